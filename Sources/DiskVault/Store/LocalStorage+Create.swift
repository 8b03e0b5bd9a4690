/// A new local vault: its directory and folders made in place before vault.json (see `InitDirectory`).
extension LocalStorage {
    /// What `prepareNewVault` makes before vault.json, which an init killed part-way may leave for the next to
    /// take over.
    static let skeleton = InitDirectory(directories: ["chunks", "disks", "tmp", "locks"], scratch: ["tmp"])

    public func prepareNewVault() throws(DiskVaultError) {
        if FileSystem.exists(root) {
            guard FileSystem.isDirectory(root) else {
                throw DiskVaultError(.alreadyExists, "exists and is not a directory", path: root)
            }
            if FileSystem.exists(path("vault.json")) {
                throw DiskVaultError(.alreadyExists, "a vault already exists here", path: root)
            }
            guard let leftovers = try Self.skeleton.leftovers(in: root) else {
                throw DiskVaultError(.alreadyExists, "directory is not empty; a vault needs a new or empty directory", path: root)
            }
            for path in leftovers { try FileSystem.remove(path) }
        }
        try FileSystem.makeDirectories(root)
        for dir in Self.skeleton.directories.sorted() { try FileSystem.makeDirectories(path(dir)) }
        try FileSystem.syncDirectory(root)
    }

    public func containerExists() throws(DiskVaultError) -> Bool {
        FileSystem.isDirectory(root)
    }
}
