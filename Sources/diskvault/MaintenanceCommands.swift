import ArgumentParser
import DiskVault

struct GCCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract: "Remove every blob no recovery point needs; report blobs and bytes freed.",
        discussion: """
            Takes the vault's exclusive lock: it waits for (or, without --lock-wait, refuses while) backups run.

            Examples:
              diskvault gc --vault /backup/v --dry-run
              diskvault gc --vault /backup/v --lock-wait 600
            """)
    @OptionGroup var vaultOptions: VaultOptions
    @Flag(name: .long, help: "Only report what would be freed.") var dryRun = false
    @OptionGroup var lock: LockOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        let vault = try vaultOptions.open()
        let report = try GarbageCollector.run(vault, dryRun: dryRun, control: lock.control)
        for w in report.warnings { Terminal.warning(w) }
        for p in report.damagedPoints { Terminal.warning("point \(p) is damaged; its chunks were kept (remove it with diskvault points forget)") }
        if !report.sweepSkipped.isEmpty {
            if output.json { printJSON(report) }
            for why in report.sweepSkipped { Terminal.warning("cannot know the chunks of \(why)") }
            throw DiskVaultError(.corrupt, "gc kept every blob: the chunks of \(report.sweepSkipped.count) point(s) cannot be known; forget them with diskvault points forget --vault V --disk D --point ID, then run gc again", path: vault.location)
        }
        if output.json { printJSON(report); return }
        print("\(dryRun ? "would free" : "freed") \(report.blobsRemoved) blobs, \(ByteCount.format(report.bytesFreed)); kept \(report.blobsKept) blobs referenced by \(report.points) points"
              + (report.partialPointsRemoved > 0 ? "; \(report.partialPointsRemoved) unfinished points removed" : "")
              + (report.temporaryFilesRemoved > 0 ? "; \(report.temporaryFilesRemoved) temporary files removed" : ""))
    }
}

struct JobsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobs", abstract: "The record of every backup, restore, verify, prune and gc.",
        subcommands: [List.self, Show.self, Prune.self], defaultSubcommand: List.self)

    struct Prune: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "prune",
            abstract: "Remove the records of jobs that ended long ago (default: more than 90 days).",
            discussion: """
                Examples:
                  diskvault jobs prune --vault /backup/v
                  diskvault jobs prune --vault /backup/v --older-than 30d --dry-run --json
                """)
        @OptionGroup var vaultOptions: VaultOptions
        @Option(name: .long, help: ArgumentHelp("Age of the records removed (e.g. 90d, 12w, 48h).", valueName: "duration")) var olderThan = "90d"
        @Flag(name: .long, help: "Only list what would be removed.") var dryRun = false
        @OptionGroup var output: OutputOptions

        func run() throws {
            let age = try parseDuration(olderThan, option: "--older-than")
            let removed = try Job.prune(try vaultOptions.open(), olderThan: age, now: Clock.now(), dryRun: dryRun)
            struct Fields: Encodable { var dryRun: Bool; var removed: [String] }
            output.done("\(dryRun ? "would remove" : "removed") \(removed.count) job \(removed.count == 1 ? "record" : "records") older than \(olderThan)",
                        Fields(dryRun: dryRun, removed: removed))
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list",
            abstract: "List jobs, oldest first.",
            discussion: """
                Examples:
                  diskvault jobs --vault /backup/v --disk web
                  diskvault jobs list --vault /backup/v --json | jq '.jobs[] | select(.state == "failed")'
                """)
        @OptionGroup var vaultOptions: VaultOptions
        @Option(name: .long, help: "Only this disk's jobs.") var disk: String?
        @OptionGroup var output: OutputOptions

        struct Listing: Encodable { var jobs: [JobRecord] }

        func run() throws {
            var jobs = try Job.list(try vaultOptions.open())
            if let disk { jobs = jobs.filter { $0.disk == disk } }
            if output.json { printJSON(Listing(jobs: jobs)); return }
            printTable(["JOB", "KIND", "DISK", "STATE", "STARTED", "ENDED", "BYTES", "ERROR"], jobs.map { j in
                [j.id, j.kind.rawValue, j.disk ?? "-", j.state.rawValue, String(j.started.prefix(19)), j.ended.map { String($0.prefix(19)) } ?? "-",
                 j.bytes.map { ByteCount.format($0) } ?? "-", j.error ?? ""]
            })
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "show",
            abstract: "Show one job.",
            discussion: """
                Examples:
                  diskvault jobs show --vault /backup/v 20261201T020000Z-3f2a
                  diskvault jobs show --vault /backup/v "$(diskvault jobs --vault /backup/v --json | jq -r '.jobs[-1].id')" --json
                """)
        @OptionGroup var vaultOptions: VaultOptions
        @Argument(help: ArgumentHelp("The job's id (from jobs list).", valueName: "id")) var id: String
        @OptionGroup var output: OutputOptions
        func run() throws {
            let job = try Job.find(try vaultOptions.open(), id: id)
            if output.json { printJSON(job); return }
            for (name, value) in job.fields { print("\(name.padding(toLength: 10, withPad: " ", startingAt: 0)) \(value)") }
        }
    }
}

extension JobRecord {
    /// The record as name and value lines, for `jobs show`.
    var fields: [(String, String)] {
        var out: [(String, String)] = [("job", id), ("kind", kind.rawValue), ("disk", disk ?? "-"), ("state", state.rawValue),
                                       ("host", "\(holder.host) (pid \(holder.pid))"), ("started", started), ("ended", ended ?? "-")]
        if let bytes { out.append(("bytes", ByteCount.format(bytes))) }
        if let point { out.append(("point", point)) }
        if let error { out.append(("error", error)) }
        for w in warnings ?? [] { out.append(("warning", w)) }
        return out
    }
}
