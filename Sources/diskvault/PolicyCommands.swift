import ArgumentParser
import DiskVault
import Foundation

struct PolicyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy", abstract: "Backup policies: a schedule and a retention (Default exists in every vault).",
        subcommands: [Create.self, List.self, Show.self, Delete.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create (or with --replace, change) a policy.")
        @OptionGroup var vaultOptions: VaultOptions
        @Option(name: .long) var name: String
        @Option(name: .long, help: "\"daily 02:00[,14:00]\" or \"weekly sun,wed 03:30\".") var schedule: String
        @Option(name: .long, help: "IANA time zone of the schedule and of retention's days (default UTC).") var timeZone = "UTC"
        @Option(name: .long) var keepLast: Int?
        @Option(name: .long) var keepDaily: Int?
        @Option(name: .long) var keepWeekly: Int?
        @Option(name: .long) var keepMonthly: Int?
        @Option(name: .long) var keepYearly: Int?
        @Flag(name: .long, help: "Replace an existing policy of this name.") var replace = false
        @Option(name: .long, help: "Running VMs read incrementally: a full read every N points (default 7).") var fullReadEvery: Int?

        func run() throws {
            var policy = try BackupPolicy.parse(name: name, schedule: schedule, timeZone: timeZone, keepLast: keepLast,
                                                keepDaily: keepDaily, keepWeekly: keepWeekly, keepMonthly: keepMonthly, keepYearly: keepYearly)
            if let fullReadEvery {
                guard fullReadEvery >= 1 else { throw DiskVaultError(.usage, "--full-read-every must be at least 1") }
                policy.fullReadEvery = fullReadEvery
            }
            try vaultOptions.open().savePolicy(policy, replacing: replace)
            print("policy \(policy.name): \(policy.schedule) (\(policy.timeZone)); keep \(policy.retention)")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List policies.")
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
        static let configuration = CommandConfiguration(abstract: "Show one policy as JSON, with its next scheduled time.")
        @OptionGroup var vaultOptions: VaultOptions
        @Option(name: .long) var name: String
        func run() throws {
            let policy = try vaultOptions.open().policy(name)
            printJSON(policy)
            if let next = policy.nextScheduledTime(after: Clock.now()) { print("next run: \(Timestamp.format(next))") }
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a policy no disk uses.")
        @OptionGroup var vaultOptions: VaultOptions
        @Option(name: .long) var name: String
        func run() throws {
            try vaultOptions.open().deletePolicy(name)
            print("deleted policy \(name)")
        }
    }
}

struct ProtectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "protect", abstract: "Bind a disk to its source image, a policy and its key vault, for scheduled runs.",
        subcommands: [Add.self, List.self, Remove.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Protect a disk (or change how it is protected).")
        @OptionGroup var vaultOptions: VaultOptions
        @Option(name: .long) var disk: String
        @Option(name: .long, help: "The image to back up: a file or a block device.") var source: String?
        @OptionGroup var live: LiveOptions
        @Option(name: .long, help: ArgumentHelp("With --qmp: the VM's drive (node name, QOM path or qdev id).", valueName: "drive")) var drive: String?
        @Option(name: .long) var policy = "Default"
        @OptionGroup var keys: KeyVaultAccessOptions
        @Option(name: .long, help: "Volumes to treat as encrypted (disk, all, or 1,3).") var declareEncrypted: String?
        @Flag(name: .long, help: "Back up an encrypted disk without its keys.") var withoutKeys = false
        func run() throws {
            try DiskName.validate(disk)
            let vault = try vaultOptions.open()
            let access = try keys.access()
            let described: String
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
                described = FileSystem.absolutePath(source)
            }
            var protected = ProtectedDisk(
                disk: disk, source: liveSource.map { "qmp:\($0.qmp)#\($0.drive)" } ?? described, policy: policy,
                keyVault: access,
                declareEncrypted: declareEncrypted, withoutKeys: withoutKeys ? true : nil, created: Timestamp.format(Clock.now()))
            protected.live = liveSource
            try vault.protect(protected)
            print("protecting disk \(disk): \(described) under policy \(policy)")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List protected disks and when each is next due.")
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
        static let configuration = CommandConfiguration(abstract: "Stop protecting a disk (its points stay).")
        @OptionGroup var vaultOptions: VaultOptions
        @Option(name: .long) var disk: String
        func run() throws {
            try vaultOptions.open().unprotect(disk)
            print("disk \(disk) is no longer protected; its recovery points stay")
        }
    }
}

struct PruneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract: "Remove the points each disk's policy no longer keeps (on-demand retain-until dates win); gc frees the space.")
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
        discussion: "Each schedule slot runs once; a disk whose backup is already running is skipped. Exit 1 if any backup failed.")
    @OptionGroup var vaultOptions: VaultOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        let vault = try vaultOptions.open()
        let runs = try RunDue.run(vault, now: Clock.now(), control: JobControl(notice: { Terminal.warning($0) }))
        if output.json {
            printJSON(runs)
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
        static let configuration = CommandConfiguration(abstract: "Print a systemd service and timer that call run-due every 5 minutes.")
        @OptionGroup var vaultOptions: VaultOptions
        func run() throws {
            let vault = FileSystem.absolutePath(try vaultOptions.location())
            _ = try vaultOptions.open()
            let binary = FileSystem.absolutePath(CommandLine.arguments[0])
            print("""
                # /etc/systemd/system/diskvault-run-due.service
                [Unit]
                Description=diskvault: back up the disks that are due in \(vault)
                After=local-fs.target

                [Service]
                Type=oneshot
                ExecStart=\(binary) run-due --vault \(vault)
                Nice=10
                IOSchedulingClass=best-effort
                IOSchedulingPriority=7

                # /etc/systemd/system/diskvault-run-due.timer
                [Unit]
                Description=diskvault: look for due backups every 5 minutes

                [Timer]
                OnCalendar=*:0/5
                Persistent=true
                RandomizedDelaySec=30

                [Install]
                WantedBy=timers.target

                # Install with: systemctl daemon-reload && systemctl enable --now diskvault-run-due.timer
                """)
        }
    }
}
