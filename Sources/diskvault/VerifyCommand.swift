import ArgumentParser
import DiskVault

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Read every chunk the points need and check it; exit 1 when any is missing or damaged.",
        discussion: """
        Examples:
          diskvault verify --vault /backup/v
          diskvault verify --vault /backup/v --disk web --point latest --json
        """)

    @OptionGroup var vaultOptions: VaultOptions

    @Option(name: .long, help: "Only this disk's points.")
    var disk: String?

    @Option(name: .long, help: "Only this point (needs --disk).")
    var point: String?

    @OptionGroup(title: "Key backups (optional: with them, each key backup from this key vault is also opened)")
    var keys: KeyVaultAccessOptions

    @OptionGroup var threads: ThreadOptions
    @OptionGroup var lock: LockOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        if let disk { try DiskName.validate(disk) }
        let vault = try vaultOptions.open()
        var options = VerifyOptions(disk: disk, point: point)
        options.threads = try threads.count()
        options.keyVault = try keys.access()
        let verify = Verify(vault: vault, options: options)
        let report = try withProgress("verify") { progress in
            verify.observer = progress
            return try verify.run(lock.control)
        }
        if output.json {
            printJSON(report)
        } else {
            for problem in report.problems {
                let who = problem.points.joined(separator: ", ")
                print("\(problem.kind.rawValue.uppercased()): \(problem.message)\n  needed by: \(who)")
            }
            print("checked \(report.points.count) points, \(report.chunksChecked) chunks, \(ByteCount.format(report.bytesChecked)) in \(seconds(report.seconds)): \(report.ok ? "ok" : "\(report.problems.count) problems")")
        }
        if !report.ok { throw CommandFailed(status: 1) }
    }
}
