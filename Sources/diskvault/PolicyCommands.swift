import ArgumentParser
import DiskVault
import Foundation

struct PolicyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy", abstract: "Backup policies: a schedule and a retention (Default exists in every vault).",
        subcommands: [Create.self, List.self, Show.self, Delete.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "create",
            abstract: "Create (or with --replace, change) a policy.",
            discussion: """
            Examples:
              diskvault policy create --vault /backup/v --name nightly --schedule 'daily 01:30' --keep-daily 14 --keep-weekly 8
              diskvault policy create --vault /backup/v --name twice --schedule 'daily 02:00,14:00' --time-zone Europe/Berlin --keep-last 10 --replace
            """)
        @OptionGroup var vaultOptions: VaultOptions
        @Option(name: .long, help: "The policy's name.") var name: String
        @Option(name: .long, help: "\"daily 02:00[,14:00]\" or \"weekly sun,wed 03:30\".") var schedule: String
        @Option(name: .long, help: "IANA time zone of the schedule and of retention's days (default UTC).") var timeZone = "UTC"
        @Option(name: .long, help: "Keep the newest N scheduled points.") var keepLast: Int?
        @Option(name: .long, help: "Keep the newest scheduled point of each of the last N days that have one.") var keepDaily: Int?
        @Option(name: .long, help: "The same for ISO weeks.") var keepWeekly: Int?
        @Option(name: .long, help: "The same for months.") var keepMonthly: Int?
        @Option(name: .long, help: "The same for years.") var keepYearly: Int?
        @Flag(name: .long, help: "Replace an existing policy of this name.") var replace = false
        @Option(name: .long, help: "Running VMs read incrementally: a full read every N points (default 7).") var fullReadEvery: Int?
        @Option(name: .long, help: ArgumentHelp("Run this (through /bin/sh, the failed run's JSON on standard input) when a scheduled backup fails.", valueName: "command"))
        var notifyCommand: String?
        @OptionGroup var output: OutputOptions

        func run() throws {
            var policy = try BackupPolicy.parse(name: name, schedule: schedule, timeZone: timeZone, keepLast: keepLast,
                                                keepDaily: keepDaily, keepWeekly: keepWeekly, keepMonthly: keepMonthly, keepYearly: keepYearly)
            if let fullReadEvery {
                guard fullReadEvery >= 1 else { throw DiskVaultError(.usage, "--full-read-every must be at least 1") }
                policy.fullReadEvery = fullReadEvery
            }
            policy.notifyCommand = notifyCommand
            try vaultOptions.open().savePolicy(policy, replacing: replace)
            output.done("policy \(policy.name): \(policy.schedule) (\(policy.timeZone)); retention \(policy.retention)", policy)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list",
            abstract: "List policies.",
            discussion: """
            Examples:
              diskvault policy list --vault /backup/v
              diskvault policy list --vault /backup/v --json | jq -r '.policies[].name'
            """)
        @OptionGroup var vaultOptions: VaultOptions
        @OptionGroup var output: OutputOptions
        struct Listing: Encodable { var policies: [BackupPolicy] }
        func run() throws {
            let policies = try vaultOptions.open().policies()
            if output.json { printJSON(Listing(policies: policies)); return }
            printTable(["POLICY", "SCHEDULE", "TIME ZONE", "RETENTION"], policies.map { [$0.name, "\($0.schedule)", $0.timeZone, "\($0.retention)"] })
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "show",
            abstract: "Show one policy, with its next scheduled time.",
            discussion: """
            Examples:
              diskvault policy show --vault /backup/v --name Default
              diskvault policy show --vault /backup/v --name nightly --json | jq -r .nextRun
            """)
        @OptionGroup var vaultOptions: VaultOptions
        @Option(name: .long, help: "The policy's name.") var name: String
        @OptionGroup var output: OutputOptions
        struct Shown: Encodable { var policy: BackupPolicy; var nextRun: String? }
        func run() throws {
            let policy = try vaultOptions.open().policy(name)
            let next = policy.nextScheduledTime(after: Clock.now()).map(Timestamp.format)
            if output.json { printJSON(Shown(policy: policy, nextRun: next)); return }
            print("policy     \(policy.name)")
            print("schedule   \(policy.schedule) (\(policy.timeZone))")
            print("retention  \(policy.retention)")
            if let n = policy.fullReadEvery { print("full read  every \(n) points (running VMs)") }
            print("next run   \(next ?? "-")")
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "delete",
            abstract: "Delete a policy no disk uses.",
            discussion: """
            Examples:
              diskvault policy delete --vault /backup/v --name nightly
            """)
        @OptionGroup var vaultOptions: VaultOptions
        @Option(name: .long, help: "The policy's name.") var name: String
        @OptionGroup var output: OutputOptions
        func run() throws {
            try vaultOptions.open().deletePolicy(name)
            output.done("deleted policy \(name)", ["policy": name])
        }
    }
}

struct ProtectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "protect", abstract: "Bind a disk to its source image, a policy and its key vault, for scheduled runs.",
        subcommands: [Add.self, List.self, Remove.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "add",
            abstract: "Protect a disk (or change how it is protected).",
            discussion: """
            Examples:
              diskvault protect add --vault /backup/v --disk web --source /var/lib/libvirt/images/web.img --policy nightly
              diskvault protect add --vault /backup/v --disk db --source /dev/vg0/db --keyvault /srv/kv --principal host1 --credential host1.cred
              diskvault protect add --vault /backup/v --disk vm1 --qmp /run/vm1.qmp --drive vda
            """)
        @OptionGroup var vaultOptions: VaultOptions
        @Option(name: .long, help: "The disk's name in the vault (letters, digits, '.', '_', '-').") var disk: String
        @Option(name: .long, help: "The image to back up: a file, a block device or an NBD URI.") var source: String?
        @OptionGroup var live: LiveOptions
        @Option(name: .long, help: ArgumentHelp("With --qmp: the VM's drive (node name, QOM path or qdev id).", valueName: "drive")) var drive: String?
        @Option(name: .long, help: "The policy it is backed up and kept under.") var policy = "Default"
        @OptionGroup var keys: KeyVaultAccessOptions
        @Option(name: .long, help: "Volumes to treat as encrypted (disk, all, or 1,3).") var declareEncrypted: String?
        @Flag(name: .long, help: "Back up an encrypted disk without its keys.") var withoutKeys = false
        @OptionGroup var output: OutputOptions
        func run() throws {
            try DiskName.validate(disk)
            let vault = try vaultOptions.open()
            let access = try keys.access()
            let described: String
            var encrypted: [String] = []
            var liveSource: ProtectedDisk.LiveSource? = nil
            if let qmp = live.qmp {
                guard source == nil, let drive else { throw DiskVaultError(.usage, "--qmp goes with --drive, and without --source") }
                guard !live.fullRead else { throw DiskVaultError(.usage, "--full-read is for one backup; a protected disk takes --full-read-every") }
                let o = try live.options(qmp: qmp, drives: [(disk, drive)], base: BackupOptions(disk: disk))
                liveSource = ProtectedDisk.LiveSource(qmp: o.qmp, drive: drive, scratch: live.scratch.map { _ in o.scratch },
                                                      freeze: o.freeze, thaw: o.thaw, fullReadEvery: live.fullReadEvery)
                described = "drive \(drive) of the VM at \(o.qmp)"
            } else {
                guard let source else { throw DiskVaultError(.usage, "give --source IMAGE, or --qmp SOCKET --drive DRIVE for a running VM") }
                guard drive == nil else { throw DiskVaultError(.usage, "--drive goes with --qmp") }
                try live.checkUnused()
                described = ImageSource.isNBDURI(source) ? source : FileSystem.absolutePath(source)
                // Checked now, not at the first scheduled run: the source opens, and an encrypted disk's keys
                // are reachable through the key vault given (and open it).
                var options = BackupOptions(disk: disk)
                options.keyVault = access
                options.withoutKeys = withoutKeys
                if let declareEncrypted { options.declared = try LayoutReader.Declaration(parsing: declareEncrypted) }
                let opened = try ImageSource.open(described, inUse: .allow)
                encrypted = try Backup.preflight(vault: vault, source: opened, options: options)
            }
            var protected = ProtectedDisk(
                disk: disk, source: liveSource.map { "qmp:\($0.qmp)#\($0.drive)" } ?? described, policy: policy,
                keyVault: access,
                declareEncrypted: declareEncrypted, withoutKeys: withoutKeys ? true : nil, created: Timestamp.format(Clock.now()))
            protected.live = liveSource
            try vault.protect(protected)
            output.done("protecting disk \(disk): \(described) under policy \(policy)"
                        + (encrypted.isEmpty ? "" : withoutKeys ? " (encrypted: \(encrypted.joined(separator: ", ")); its keys are not backed up)"
                                                  : " (encrypted: \(encrypted.joined(separator: ", ")); its keys checked in the key vault)"), protected)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list",
            abstract: "List protected disks and when each is next due.",
            discussion: """
            Examples:
              diskvault protect list --vault /backup/v
              diskvault protect list --vault /backup/v --json
            """)
        @OptionGroup var vaultOptions: VaultOptions
        @OptionGroup var output: OutputOptions
        struct Listing: Encodable { var disks: [ProtectedDisk] }
        func run() throws {
            let vault = try vaultOptions.open()
            let disks = try vault.protectedDisks()
            if output.json { printJSON(Listing(disks: disks)); return }
            printTable(["DISK", "SOURCE", "POLICY", "KEY VAULT", "NEXT RUN"], try disks.map { d in
                let next = try vault.policy(d.policy).nextScheduledTime(after: Clock.now()).map(Timestamp.format) ?? "-"
                return [d.disk, d.source, d.policy, d.keyVault?.keyVault ?? "-", next]
            })
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "remove",
            abstract: "Stop protecting a disk (its points stay).",
            discussion: """
            Examples:
              diskvault protect remove --vault /backup/v --disk web
            """)
        @OptionGroup var vaultOptions: VaultOptions
        @Option(name: .long, help: "The disk.") var disk: String
        @OptionGroup var output: OutputOptions
        func run() throws {
            try vaultOptions.open().unprotect(disk)
            output.done("disk \(disk) is no longer protected; its recovery points stay", ["disk": disk])
        }
    }
}

struct PruneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract: "Remove the points each disk's policy no longer keeps (on-demand retain-until dates win); gc frees the space.",
        discussion: """
        Examples:
          diskvault prune --vault /backup/v --dry-run
          diskvault prune --vault /backup/v --disk web && diskvault gc --vault /backup/v
        """)
    @OptionGroup var vaultOptions: VaultOptions
    @Option(name: .long, help: "Only this disk.") var disk: String?
    @Flag(name: .long, help: "Show what would be kept and removed, and why; change nothing.") var dryRun = false
    @OptionGroup var lock: LockOptions
    @OptionGroup var output: OutputOptions

    struct Listing: Encodable { var dryRun: Bool; var disks: [Prune.DiskReport] }

    func run() throws {
        if let disk { try DiskName.validate(disk) }
        let vault = try vaultOptions.open()
        let reports = try Prune.run(vault, disk: disk, now: Clock.now(), dryRun: dryRun, control: lock.control)
        if output.json { printJSON(Listing(dryRun: dryRun, disks: reports)); return }
        for r in reports {
            print("disk \(r.disk) (policy \(r.policy)):")
            for d in r.decisions {
                print("  \(d.keep ? "keep  " : (dryRun ? "would remove" : "remove")) \(d.id)  \(d.reasons.joined(separator: "; "))")
            }
        }
    }
}

struct RunDueCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run-due",
        abstract: "Back up every protected disk that is due by its policy; safe to call from cron or a timer every few minutes.",
        discussion: """
            Each schedule slot runs once; a disk whose backup is already running is skipped. Exit 1 if any backup \
            failed; --notify-command (and the policy's) then runs with the failed run's JSON on standard input.

            Examples:
              diskvault run-due --vault /backup/v
              diskvault run-due --vault /backup/v --notify-command 'mail -s "diskvault: a backup failed" ops@example.org'
            """)
    @OptionGroup var vaultOptions: VaultOptions
    @Option(name: .long, help: ArgumentHelp("Run this (through /bin/sh, the failed run's JSON on standard input) when a backup fails; a policy's own --notify-command runs too.", valueName: "command"))
    var notifyCommand: String?
    @OptionGroup var output: OutputOptions

    func run() throws {
        let vault = try vaultOptions.open()
        let runs = try RunDue.run(vault, now: Clock.now(), control: JobControl(notice: { Terminal.warning($0) }))
        for r in runs where r.outcome == .failed {
            for command in Set([notifyCommand, r.notifyCommand].compactMap { $0 }).sorted() { Notify.run(command, r) }
        }
        struct Runs: Encodable { var runs: [RunDue.Run] }
        if output.json {
            printJSON(Runs(runs: runs))
        } else if runs.isEmpty {
            print("nothing is due")
        } else {
            for r in runs { print("\(r.disk): \(r.outcome.rawValue)\(r.point.map { " point \($0)" } ?? "")\(r.error.map { " — \($0)" } ?? "") (slot \(r.slot))") }
        }
        if runs.contains(where: { $0.outcome == .failed }) { throw CommandFailed(status: 1) }
    }
}

struct ScheduleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schedule", abstract: "Print what runs scheduled backups without a resident daemon.",
        subcommands: [Systemd.self])

    struct Systemd: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "systemd",
            abstract: "Print systemd units that call run-due every 5 minutes: templates, one instance per vault.",
            discussion: """
                The units are templates (diskvault-run-due@.service, .timer) whose instance is the vault's location,
                escaped as systemd-escape does, so that timers of several vaults never collide; a failed run starts
                diskvault-run-due-failed@INSTANCE.service, which logs it (add your own alerting there, or use
                --notify-command on run-due).

                Examples:
                  diskvault schedule systemd --vault /backup/v
                  diskvault schedule systemd --vault /backup/v --json | jq -r '.units | keys[]'
                """)
        @OptionGroup var vaultOptions: VaultOptions
        @OptionGroup var output: OutputOptions

        struct Units: Encodable {
            var instance: String
            var units: [String: String]
            var enable: String
        }

        /// systemd's escaping of a unit name's instance (`systemd-escape`, not --path): "/" becomes "-", and
        /// every byte but ASCII letters, digits, ":", "_" and "." (or a "." in front) becomes \xNN.
        static func escape(_ s: String) -> String {
            var out = ""
            for (i, b) in s.utf8.enumerated() {
                switch b {
                case UInt8(ascii: "/"): out += "-"
                case UInt8(ascii: "."): out += i == 0 ? "\\x2e" : "."
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                     UInt8(ascii: ":"), UInt8(ascii: "_"):
                    out += String(UnicodeScalar(b))
                default: out += String(format: "\\x%02x", b)
                }
            }
            return out
        }

        func run() throws {
            let location = try vaultOptions.location()
            let vault = location.hasPrefix("s3:") ? location : FileSystem.absolutePath(location)
            _ = try vaultOptions.open()
            let binary = FileSystem.absolutePath(CommandLine.arguments[0])
            let instance = Self.escape(vault)
            let passphrase = vaultOptions.passphraseFile.map { " --passphrase-file \(FileSystem.absolutePath($0))" } ?? ""
            let units = [
                "diskvault-run-due@.service": """
                    [Unit]
                    Description=diskvault: back up the disks that are due in %I
                    After=local-fs.target network-online.target
                    OnFailure=diskvault-run-due-failed@%i.service

                    [Service]
                    Type=oneshot
                    ExecStart=\(binary) run-due --vault %I\(passphrase)
                    Nice=10
                    IOSchedulingClass=best-effort
                    IOSchedulingPriority=7

                    """,
                "diskvault-run-due@.timer": """
                    [Unit]
                    Description=diskvault: look for due backups in %I every 5 minutes

                    [Timer]
                    OnCalendar=*:0/5
                    Persistent=true
                    RandomizedDelaySec=30

                    [Install]
                    WantedBy=timers.target

                    """,
                "diskvault-run-due-failed@.service": """
                    [Unit]
                    Description=diskvault: a scheduled run for %I failed

                    [Service]
                    Type=oneshot
                    ExecStart=/usr/bin/logger -p daemon.err -t diskvault "run-due failed for vault %I: see journalctl -u diskvault-run-due@%i.service"

                    """,
            ]
            let enable = "systemctl daemon-reload && systemctl enable --now 'diskvault-run-due@\(instance).timer'"
            if output.json { printJSON(Units(instance: instance, units: units, enable: enable)); return }
            for name in units.keys.sorted() {
                print("# /etc/systemd/system/\(name)")
                print(units[name]!)
            }
            print("# Install with: \(enable)")
        }
    }
}
