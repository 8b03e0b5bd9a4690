import Foundation

/// The newest epochs this host has seen of each key vault — of its administrator's keys (keyvault.json) and of
/// its policy — kept outside the key vault
/// (`$DISKVAULT_STATE_DIR`, else `$XDG_STATE_HOME/diskvault`, else `~/.local/state/diskvault`, one file per key
/// vault id). Whoever can write a key vault's folder can put back an old copy of every file, keyvault.json
/// included, and the administrator would then seal new secrets to capability keys a revoked principal holds;
/// nothing inside the folder can tell; a restore principal's `keys restore` would seal to an old policy's keys
/// just the same. This record can: a keyvault.json or a policy older than it is
/// refused before the administrator writes anything (checked under the key vault's write lock). It is trust on first use: a host that never opened the key vault has no record to compare with.
enum KeyVaultHighWater {
    static var directory: String? {
        let env = ProcessInfo.processInfo.environment
        if let dir = env["DISKVAULT_STATE_DIR"], !dir.isEmpty { return dir }
        if let dir = env["XDG_STATE_HOME"], !dir.isEmpty { return "\(dir)/diskvault" }
        if let home = env["HOME"], !home.isEmpty { return "\(home)/.local/state/diskvault" }
        return nil
    }

    /// What is recorded: the administrator's keys, or the policy.
    enum Record: String { case keys = "epoch", policy = "policy-epoch" }

    static func path(_ id: String, _ record: Record = .keys) -> String? { directory.map { "\($0)/keyvault-\(id).\(record.rawValue)" } }

    static func seen(_ id: String, _ record: Record = .keys) -> Int? {
        guard let path = path(id, record), let bytes = try? FileSystem.readRegularFile(path, limit: 64) else { return nil }
        return Int(String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// Records `epoch` unless a newer one is recorded. A record that cannot be written is no reason to refuse
    /// the administrator's work; it only leaves the next check with less to go by.
    static func record(_ id: String, epoch: Int, _ record: Record = .keys) {
        guard let dir = directory, let path = path(id, record), (seen(id, record) ?? 0) < epoch else { return }
        try? FileSystem.makeDirectories(dir)
        try? FileSystem.writeFileAtomically(path, Array("\(epoch)\n".utf8))
    }
}
