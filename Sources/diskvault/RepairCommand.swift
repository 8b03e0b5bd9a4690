import ArgumentParser
import DiskVault

struct RepairCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "repair",
        abstract: "Store again the chunks verify found missing or damaged, read from the disks' sources; exit 1 when any stay damaged.",
        discussion: """
        Examples:
          diskvault repair --vault /backup/v
          diskvault repair --vault /backup/v --disk web --json
        """)

    @OptionGroup var vaultOptions: VaultOptions

    @Option(name: .long, help: "Only this disk's sources (default: every disk's).")
    var disk: String?

    @OptionGroup var lock: LockOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        if let disk { try DiskName.validate(disk) }
        let vault = try vaultOptions.open()
        // Blobs are stored as a backup stores them: beside backups, never beside gc.
        let repair = Repair(vault: vault, options: RepairOptions(disk: disk))
        let report = try withProgress("repair") { progress in
            repair.observer = progress
            return try repair.run(lock.control)
        }
        if output.json {
            printJSON(report)
        } else {
            for chunk in report.healed { print("HEALED: chunk \(chunk)") }
            for chunk in report.stillDamaged { print("DAMAGED: chunk \(chunk) (no source holds it)") }
            for point in report.damagedPoints { print("  point still damaged: \(point)") }
            print("healed \(report.healed.count) chunks from \(report.sourcesRead.count) sources; \(report.stillDamaged.isEmpty ? "nothing stays damaged" : "\(report.stillDamaged.count) stay damaged, \(report.damagedPoints.count) points need them")")
        }
        if !report.ok { throw CommandFailed(status: 1) }
    }
}
