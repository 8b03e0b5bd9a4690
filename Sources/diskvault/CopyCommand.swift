import ArgumentParser
import DiskVault
import Foundation

struct CopyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "copy",
        abstract: "Copy recovery points, and the chunks they need, to another vault (an off-site copy).",
        discussion: """
            Either vault may be local or in an object store, encrypted or not: each chunk is read and checked, \
            then stored as the target names and seals it. Points the target has already are skipped, and chunks \
            it has are not sent again, so a copy that stopped is taken up where it stopped and a second copy \
            transfers nothing. Both vaults must have the same chunk size. The source's passphrase comes from \
            --from-passphrase-file, else DISKVAULT_FROM_PASSPHRASE, else DISKVAULT_PASSPHRASE; the target's from \
            --passphrase-file, else DISKVAULT_PASSPHRASE.

            Examples:
              diskvault copy --from /backup/vault --to s3:https://s3.example.net/offsite/vault
              diskvault copy --from /backup/vault --to /mnt/usb/vault --disk web --point latest
            """)

    @Option(name: .long, help: ArgumentHelp("The vault to copy from (a directory, or s3:http(s)://HOST/BUCKET/PREFIX).", valueName: "vault"))
    var from: String
    @Option(name: .long, help: ArgumentHelp("The vault to copy to.", valueName: "vault"))
    var to: String
    @Option(name: .long, help: ArgumentHelp("File holding the source vault's passphrase.", valueName: "file"))
    var fromPassphraseFile: String?
    @Option(name: .long, help: ArgumentHelp("File holding the target vault's passphrase.", valueName: "file"))
    var passphraseFile: String?
    @Option(name: .long, help: "Only this disk's points.") var disk: String?
    @Option(name: .long, help: "Only this point of --disk (an id, or latest).") var point: String?
    @OptionGroup var lock: LockOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        let fromFile = fromPassphraseFile
        let source = try Vault.open(from) { () throws(DiskVaultError) -> [UInt8] in
            let variable = Environment.value("DISKVAULT_FROM_PASSPHRASE") != nil ? "DISKVAULT_FROM_PASSPHRASE" : "DISKVAULT_PASSPHRASE"
            do { return try Passphrase.read(file: fromFile, environment: variable, prompt: "passphrase of vault \(from)") } catch let e as DiskVaultError {
                throw e.code == .usage && fromFile == nil ? DiskVaultError(.usage, "vault \(from) is encrypted: give --from-passphrase-file or set DISKVAULT_FROM_PASSPHRASE") : e
            } catch { throw DiskVaultError(.usage, "\(error)") }
        }
        let target = try VaultOptions(vault: to, passphraseFile: passphraseFile).open()
        let pointID = point == "latest" ? (try disk.map { try source.point(disk: $0, id: nil).id }) : point
        let report = try Copy.run(
            from: source, to: target, disk: disk, point: pointID, control: lock.control,
            progress: output.json || !Terminal.stderrIsTTY ? nil : { Terminal.raw($0) })
        for w in report.warnings { Terminal.warning(w) }
        if output.json { printJSON(report); return }
        print("copied \(report.copied.count) points (\(report.alreadyThere) already there)\(report.vmPointsCopied.isEmpty ? "" : " and \(report.vmPointsCopied.count) VM point records"): \(report.chunksCopied) chunks, \(ByteCount.format(report.bytesCopied)) sent, \(report.chunksAlreadyThere) chunks already there, in \(String(format: "%.1f", report.seconds)) s")
    }
}
