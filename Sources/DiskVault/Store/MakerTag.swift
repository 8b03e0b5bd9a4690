import Foundation

/// A fragment of a temporary file's name saying which process made it — host, pid and start time, as a lock
/// holder records them — so that a later run can prove its maker gone and remove what it left behind.
enum MakerTag {
    /// "<host hash>-<pid>-<start ticks>" of this process.
    static func current() -> String {
        let me = LockHolder.current(purpose: "temporary file")
        return "\(hostHash)-\(me.pid)-\(me.startTicks)"
    }

    /// Whether the maker of `name` (`prefix`, a tag, "-", anything) is known to be gone: made on this host by
    /// a process that no longer runs. A name without a tag, or from another host, is never called gone.
    static func isGone(_ name: String, prefix: String) -> Bool {
        guard name.hasPrefix(prefix) else { return false }
        let fields = name.dropFirst(prefix.count).split(separator: "-")
        guard fields.count >= 3, fields[0] == hostHash, let pid = Int32(fields[1]), pid > 0, let ticks = UInt64(fields[2])
        else { return false }
        let maker = LockHolder(pid: pid, startTicks: ticks, host: HostIdentity.name, purpose: "", since: "")
        return !maker.isAlive
    }

    /// Short, so that names stay well within NAME_MAX; a file system shared by hosts keeps them apart.
    static let hostHash = String(SHA256.digest(Array(HostIdentity.name.utf8)).hex.prefix(8))
}
