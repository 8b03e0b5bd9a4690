import ArgumentParser
import DiskVault
import Foundation

struct StatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "What the vault holds: logical, data, unique and stored bytes; dedup and compression ratios, per disk.",
        discussion: """
            Logical bytes are the disks' sizes summed over their points (what restoring every point writes); data \
            bytes leave out chunks of zeros; unique bytes are the distinct chunks in the vault; stored bytes are \
            their blobs as stored. Dedup = data / unique, compression = unique / stored. Lists every blob.

            Examples:
              diskvault stats --vault /backup/v
              diskvault stats --vault /backup/v --disk web --points --json | jq '.disks[0].pointStats[-1].newBytes'
            """)
    @OptionGroup var vaultOptions: VaultOptions
    @Option(name: .long, help: "Only this disk (the blob figures stay the vault's).") var disk: String?
    @Flag(name: .long, help: "Each point's own figures too.") var points = false
    @OptionGroup var output: OutputOptions

    func run() throws {
        if let disk { try DiskName.validate(disk) }
        let stats = try VaultStats.compute(try vaultOptions.open(), disk: disk, perPoint: points)
        if output.json { printJSON(stats); return }
        func ratio(_ r: Double?) -> String { r.map { String(format: "%.2fx", $0) } ?? "-" }
        print("vault \(stats.vault): \(stats.points) points of \(stats.disks.count) disks, chunk size \(ByteCount.format(UInt64(stats.chunkSize)))")
        print("  logical  \(ByteCount.format(stats.logicalBytes))")
        print("  data     \(ByteCount.format(stats.dataBytes)) (without chunks of zeros)")
        print("  unique   \(ByteCount.format(stats.uniqueBytes)) in \(stats.uniqueChunks) \(stats.uniqueChunks == 1 ? "chunk" : "chunks")")
        print("  stored   \(ByteCount.format(stats.storedBytes))")
        print("  dedup \(ratio(stats.dedupRatio)), compression \(ratio(stats.compressionRatio)), together \(ratio(stats.spaceSavingRatio))")
        printTable(["DISK", "POINTS", "LATEST", "SIZE", "LOGICAL", "DATA", "ADDED"], stats.disks.map { d in
            [d.disk, "\(d.points)", d.latestPoint ?? "-", ByteCount.format(d.latestSize), ByteCount.format(d.logicalBytes),
             ByteCount.format(d.dataBytes), ByteCount.format(d.storedBytes)]
        })
        for d in stats.disks {
            guard let list = d.pointStats, !list.isEmpty else { continue }
            print("")
            printTable(["POINT (\(d.disk))", "TRIGGER", "SIZE", "DATA", "NEW", "STORED"], list.map { p in
                [p.id, p.trigger.rawValue, ByteCount.format(p.logicalBytes), ByteCount.format(p.dataBytes), ByteCount.format(p.newBytes),
                 ByteCount.format(p.storedBytes)]
            })
        }
    }
}

struct VaultInfo: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Describe a vault: id, format, chunk size, encryption, disks, points, policies, protected disks.",
        discussion: """
            Examples:
              diskvault vault info --vault /backup/v
              diskvault vault info --vault s3:http://127.0.0.1:8333/backups/v --json
            """)
    @OptionGroup var vaultOptions: VaultOptions
    @OptionGroup var output: OutputOptions

    struct Info: Encodable {
        var vault: String
        var id: String
        var format: String
        var version: Int
        var created: String
        var chunkSize: Int
        var hash: String
        var compression: String
        var encrypted: Bool
        var disks: [String]
        var points: Int
        var policies: [String]
        var protectedDisks: [String]
    }

    func run() throws {
        let vault = try vaultOptions.open()
        let disks = try vault.disks()
        var points = 0
        for d in disks { points += try vault.points(disk: d).count }
        let c = vault.config
        let info = Info(vault: vault.location, id: c.id, format: c.format, version: c.version, created: c.created, chunkSize: c.chunkSize, hash: c.hash,
                        compression: c.compression, encrypted: vault.isEncrypted, disks: disks, points: points,
                        policies: try vault.policies().map(\.name), protectedDisks: try vault.protectedDisks().map(\.disk))
        if output.json { printJSON(info); return }
        print("""
            vault       \(info.vault)
            id          \(info.id)
            format      \(info.format) \(info.version), created \(info.created)
            chunks      \(ByteCount.format(UInt64(info.chunkSize))), \(info.hash), \(info.compression)
            encryption  \(info.encrypted ? "encrypted (AES-256-GCM)" : "none: whoever reads the folder reads the disks")
            disks       \(info.disks.isEmpty ? "-" : info.disks.joined(separator: ", ")) (\(info.points) points)
            policies    \(info.policies.joined(separator: ", "))
            protected   \(info.protectedDisks.isEmpty ? "-" : info.protectedDisks.joined(separator: ", "))
            """)
    }
}

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Each protected disk: its last point and age, its last backup's result, its next run, what is wrong.",
        discussion: """
            A disk is overdue when it has no point, when its newest point is older than --max-age, or when a \
            scheduled run is more than --grace late. Exit status: 0 when no disk is overdue, 1 when one is \
            (a monitoring check), 2 bad usage. DISKVAULT_NOW sets the time (for tests).

            Examples:
              diskvault status --vault /backup/v
              diskvault status --vault /backup/v --max-age 26h --json || alert "diskvault: a disk is overdue"
            """)
    @OptionGroup var vaultOptions: VaultOptions
    @Option(name: .long, help: ArgumentHelp("Overdue when the newest point is older than this (e.g. 48h, 2d, 90m).", valueName: "duration"))
    var maxAge = "48h"
    @Option(name: .long, help: ArgumentHelp("Overdue when a scheduled run is this late (e.g. 1h).", valueName: "duration"))
    var grace = "1h"
    @Option(name: .long, help: ArgumentHelp("Run this with the status's JSON on standard input when a disk is overdue.", valueName: "command"))
    var notifyCommand: String?
    @OptionGroup var output: OutputOptions

    func run() throws {
        let maxAge = try parseDuration(self.maxAge, option: "--max-age"), grace = try parseDuration(self.grace, option: "--grace")
        let status = try VaultStatus.compute(try vaultOptions.open(), now: Clock.now(), maxAge: maxAge, grace: grace)
        if status.overdue > 0, let notifyCommand { Notify.run(notifyCommand, status) }
        if output.json {
            printJSON(status)
        } else if status.disks.isEmpty {
            print("no disk is protected in \(status.vault) (diskvault protect add)")
        } else {
            printTable(["DISK", "LAST POINT", "AGE", "LAST JOB", "NEXT RUN", "STATE"], status.disks.map { d in
                [d.disk, d.lastPoint ?? "-", d.lastPointAgeSeconds.map { VaultStatus.duration(TimeInterval($0)) } ?? "-",
                 d.lastJobState?.rawValue ?? "-", d.nextRun ?? "-", d.overdue ? "OVERDUE" : "ok"]
            })
            for d in status.disks { for w in d.warnings { print("\(d.disk): \(w)") } }
        }
        if status.overdue > 0 { throw CommandFailed(status: 1) }
    }
}

/// "48h", "2d", "90m", "3600s", "1w" (a bare number is seconds).
func parseDuration(_ text: String, option: String) throws(DiskVaultError) -> TimeInterval {
    let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604_800]
    var number = Substring(text), unit = 1.0
    if let last = text.last, let u = units[last] {
        number = text.dropLast()
        unit = u
    }
    guard let n = Double(number), n > 0, n.isFinite else {
        throw DiskVaultError(.usage, "\(option) \(text): give a duration such as 48h, 2d, 90m or 3600s")
    }
    return n * unit
}

/// --notify-command: run through /bin/sh with a JSON document on standard input; its failure is a warning.
enum Notify {
    static func run<T: Encodable>(_ command: String, _ document: T) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", command]
        let pipe = Pipe()
        p.standardInput = pipe
        p.standardOutput = FileHandle.standardError
        do {
            try p.run()
            pipe.fileHandleForWriting.write(Data((JSON.string(document, pretty: false) + "\n").utf8))
            try? pipe.fileHandleForWriting.close()
            p.waitUntilExit()
            if p.terminationStatus != 0 { Terminal.warning("--notify-command exited with status \(p.terminationStatus): \(command)") }
        } catch {
            Terminal.warning("--notify-command could not run: \(command): \(error)")
        }
    }
}

extension PointsCommand {
    struct Diff: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "diff",
            abstract: "The byte ranges where two points of a disk differ (chunk by chunk), and how many bytes.",
            discussion: """
                Examples:
                  diskvault points diff --vault /backup/v --disk web 20261201T020000Z-1a2b 20261202T020000Z-3c4d
                  diskvault points diff --vault /backup/v --disk web OLD latest --json | jq .changedBytes
                """)
        @OptionGroup var vaultOptions: VaultOptions
        @Option(name: .long, help: "The disk.") var disk: String
        @Argument(help: ArgumentHelp("The older point's id (or latest).", valueName: "from")) var from: String
        @Argument(help: ArgumentHelp("The newer point's id (or latest).", valueName: "to")) var to: String
        @OptionGroup var output: OutputOptions

        func run() throws {
            try DiskName.validate(disk)
            let diff = try PointDiff.compute(try vaultOptions.open(), disk: disk, from: from, to: to)
            if output.json { printJSON(diff); return }
            print("disk \(diff.disk): \(diff.from) → \(diff.to): \(ByteCount.format(diff.changedBytes)) changed in \(diff.changedChunks) \(diff.changedChunks == 1 ? "chunk" : "chunks") of \(ByteCount.format(UInt64(diff.chunkSize)))"
                  + (diff.fromSize != diff.toSize ? "; size \(ByteCount.format(diff.fromSize)) → \(ByteCount.format(diff.toSize))" : ""))
            for r in diff.ranges { print("  \(r.offset)+\(r.length)  (\(ByteCount.format(r.offset)) … \(ByteCount.format(r.offset + r.length)))") }
            if diff.truncated { print("  … (more ranges: see --json's totals)") }
        }
    }

    struct Retain: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "retain",
            abstract: "Change how long a point is kept: a date (prune keeps it until then, whatever the rules), forever, or none.",
            discussion: """
                none clears it: the policy's rules decide again. Takes the vault alone for a moment, as prune does.

                Examples:
                  diskvault points retain --vault /backup/v --disk web --point 20261201T020000Z-1a2b --until 2027-06-30
                  diskvault points retain --vault /backup/v --disk web --point latest --until forever
                """)
        @OptionGroup var vaultOptions: VaultOptions
        @Option(name: .long, help: "The disk.") var disk: String
        @Option(name: .long, help: "The point's id (or latest).") var point: String
        @Option(name: .long, help: ArgumentHelp("YYYY-MM-DD or ISO 8601 (in the future), forever, or none.", valueName: "date"))
        var until: String
        @OptionGroup var lock: LockOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            try DiskName.validate(disk)
            let forever = until == "forever", none = until == "none"
            let date: Date? = forever || none ? nil : try parseRetainUntil(until, now: Clock.now())
            let m = try vaultOptions.open().setRetainUntil(disk: disk, point: point, until: date, forever: forever, control: lock.control)
            let shown = m.retainUntil.map { $0 == RecoveryPoint.retainForever ? "forever" : $0 } ?? "no date (the policy's rules decide)"
            struct Fields: Encodable { var disk: String; var point: String; var retainUntil: String? }
            output.done("point \(m.id) of disk \(m.disk) is retained until \(shown)", Fields(disk: m.disk, point: m.id, retainUntil: m.retainUntil))
        }
    }
}
