import Foundation

/// Which protected disks are due by their policy now; a scheduled point is one with trigger `.scheduled`.
public enum DueBackups {
    public struct Due: Sendable {
        public var disk: ProtectedDisk
        public var policy: BackupPolicy
        public var slot: Date
    }

    public static func due(_ vault: Vault, now: Date) throws(DiskVaultError) -> [Due] {
        var out: [Due] = []
        for disk in try vault.protectedDisks() {
            let policy = try vault.policy(disk.policy)
            let last = try vault.points(disk: disk.disk).last { $0.manifest.trigger == .scheduled }
            let lastTime = last.flatMap { Timestamp.parse($0.manifest.created) }
            if policy.isDue(now: now, lastScheduledBackup: lastTime), let slot = policy.lastScheduledTime(atOrBefore: now) {
                out.append(Due(disk: disk, policy: policy, slot: slot))
            }
        }
        return out
    }
}
