/// What an `init` killed part-way leaves in its directory, so that a new init can take the directory over.
///
/// Init builds in place, its configuration file written last and never over another: renaming a finished tree
/// into place would fail on the usual target, an empty mount point, and would lose the directory's owner and
/// mode. Until the configuration exists every command refuses the directory, and init accepts it again if it
/// holds only its skeleton: the folders init makes, the files it writes before the configuration, anything in
/// its scratch folders, and the hidden temporaries of atomic writes.
struct InitDirectory {
    /// Folders init makes, as paths inside the directory.
    var directories: Set<String>
    /// Files init writes before its configuration.
    var files: Set<String> = []
    /// Folders whose files are temporaries by definition (a vault's tmp/).
    var scratch: Set<String> = []

    /// The temporaries of atomic writes an interrupted init left in `root`, to remove; nil when `root` holds
    /// anything else (someone's data: never taken over).
    func leftovers(in root: String) throws(DiskVaultError) -> [String]? {
        var temporaries: [String] = []
        func holdsOnlySkeleton(_ relative: String) throws(DiskVaultError) -> Bool {
            for name in try FileSystem.list(relative.isEmpty ? root : "\(root)/\(relative)") {
                let inner = relative.isEmpty ? name : "\(relative)/\(name)"
                let path = "\(root)/\(inner)"
                switch try FileSystem.entryKind(path) {
                case .directory? where directories.contains(inner):
                    guard try holdsOnlySkeleton(inner) else { return false }
                case .regularFile? where files.contains(inner) || scratch.contains(relative):
                    break
                case .regularFile? where FileSystem.isAtomicWriteTemporary(name):
                    temporaries.append(path)
                default:
                    return false
                }
            }
            return true
        }
        return try holdsOnlySkeleton("") ? temporaries : nil
    }
}
