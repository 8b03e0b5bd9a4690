import ArgumentParser
import DiskVault

struct GCCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract: "Remove every blob no recovery point needs; report blobs and bytes freed.",
        discussion: "Takes the vault's exclusive lock: it waits for (or, without --lock-wait, refuses while) backups run."
    )
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
        subcommands: [List.self, Show.self], defaultSubcommand: List.self)

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List jobs, oldest first.")
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
        static let configuration = CommandConfiguration(abstract: "Show one job.")
        @OptionGroup var vaultOptions: VaultOptions
        @Argument var id: String
        func run() throws {
            printJSON(try Job.find(try vaultOptions.open(), id: id))
        }
    }
}
