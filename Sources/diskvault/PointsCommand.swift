import ArgumentParser
import DiskVault

struct PointsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "points",
        abstract: "List recovery points, oldest first."
    )

    @OptionGroup var vaultOptions: VaultOptions

    @Option(name: .long, help: "Only this disk's points.")
    var disk: String?

    @OptionGroup var output: OutputOptions

    struct Listing: Encodable {
        var vault: String
        var points: [Manifest]
    }

    func run() throws {
        let vault = try vaultOptions.open()
        var all: [RecoveryPoint] = []
        if let disk {
            all = try vault.points(disk: disk)
        } else {
            for name in try vault.disks() { all += try vault.points(disk: name) }
        }
        if output.json {
            printJSON(Listing(vault: vault.location, points: all.map(\.manifest)))
            return
        }
        if all.isEmpty {
            print("no recovery points\(disk.map { " for disk \($0)" } ?? "")")
            return
        }
        let header = ["DISK", "POINT", "CREATED", "SIZE", "NEW", "STORED", "RETAIN UNTIL", "ENCRYPTION"]
        let rows = all.map { p -> [String] in
            let m = p.manifest
            return [m.disk, m.id, String(m.created.prefix(19)).replacingOccurrences(of: "T", with: " "),
                    ByteCount.format(m.source.size), ByteCount.format(m.stats.newBytes),
                    ByteCount.format(m.stats.storedBytes), m.retainUntil.map { String($0.prefix(10)) } ?? "-",
                    encryptionSummary(m) + (m.layoutChanges == nil ? "" : " (changed)")]
        }
        printTable(header, rows)
        for p in all {
            for change in p.manifest.layoutChanges ?? [] { print("\(p.disk)@\(p.id): \(change)") }
        }
    }
}

func printTable(_ header: [String], _ rows: [[String]]) {
    var widths = header.map(\.count)
    for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
    func line(_ cells: [String]) -> String {
        cells.enumerated().map { i, c in i == cells.count - 1 ? c : c.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
            .joined(separator: "  ")
    }
    print(line(header))
    for row in rows { print(line(row)) }
}

/// "luks1", "gpt: luks2, bitlocker", "none", or "unknown (stream)".
func encryptionSummary(_ m: Manifest) -> String {
    guard let layout = m.layout else { return "unknown (stream)" }
    let formats = layout.volumes.map(\.encryption.format).filter { $0 != "none" }
    return formats.isEmpty ? "none" : formats.joined(separator: ",")
}
