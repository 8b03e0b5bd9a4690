import ArgumentParser
import DiskVault

struct PointsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "points",
        abstract: "List recovery points (in commit order, disk by disk), compare two, change how long one is kept, or forget one.",
        subcommands: [List.self, Diff.self, Retain.self, Forget.self], defaultSubcommand: List.self)

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list",
            abstract: "List recovery points, in the order they were committed.",
            discussion: """
            Damaged points and points dated in the future are named on standard error.

            Examples:
              diskvault points --vault /backup/v
              diskvault points list --vault /backup/v --disk web --json | jq -r '.points[-1].id'
            """)

        @OptionGroup var vaultOptions: VaultOptions

        @Option(name: .long, help: "Only this disk's points.")
        var disk: String?

        @OptionGroup var output: OutputOptions

        struct Listing: Encodable {
            var vault: String
            var points: [Manifest]
            var damaged: [DamagedPoint]
        }

        func run() throws {
            let vault = try vaultOptions.open()
            var all: [RecoveryPoint] = []
            var damaged: [DamagedPoint] = []
            for name in try disk.map({ [$0] }) ?? vault.disks() {
                let scan = try vault.scanPoints(disk: name)
                all += scan.points
                damaged += scan.damaged
                for p in scan.fromTheFuture {
                    Terminal.warning("point \(p.disk)@\(p.id) is dated \(p.manifest.created), in the future: the clock of the host that made it was wrong")
                }
            }
            for d in damaged {
                Terminal.warning("point \(d.disk)@\(d.id) is damaged: \(d.problem) (diskvault points forget --disk \(d.disk) --point \(d.id) removes it)")
            }
            if output.json {
                printJSON(Listing(vault: vault.location, points: all.map(\.manifest), damaged: damaged))
                return
            }
            if all.isEmpty {
                print("no recovery points\(disk.map { " for disk \($0)" } ?? "")")
                return
            }
            let header = ["DISK", "POINT", "CREATED", "SIZE", "NEW", "STORED", "RETAIN UNTIL", "TAKEN", "ENCRYPTION"]
            let rows = all.map { p -> [String] in
                let m = p.manifest
                return [m.disk, m.id, String(m.created.prefix(19)).replacingOccurrences(of: "T", with: " "),
                        ByteCount.format(m.source.size), ByteCount.format(m.stats.newBytes),
                        ByteCount.format(m.stats.storedBytes), m.retainUntil.map { String($0.prefix(10)) } ?? "-",
                        m.consistency?.rawValue ?? "-", encryptionSummary(m) + (m.layoutChanges == nil ? "" : " (changed)")]
            }
            printTable(header, rows)
            for p in all {
                for change in p.manifest.layoutChanges ?? [] { print("\(p.disk)@\(p.id): \(change)") }
            }
        }
    }

    struct Forget: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "forget",
            abstract: "Remove one recovery point, damaged or not; gc then frees the chunks no other point needs.",
            discussion: """
                The point's manifest goes first, so the point is gone at once; its index and key backup follow.
                Example: diskvault points forget --vault /backup/vault --disk web --point 20261201T211611Z-db7a65
                """)

        @OptionGroup var vaultOptions: VaultOptions

        @Option(name: .long, help: "The disk.")
        var disk: String

        @Option(name: .long, help: "The point id (the name of its folder).")
        var point: String

        @OptionGroup var lock: LockOptions
        @OptionGroup var output: OutputOptions

        struct Forgotten: Encodable { var disk: String; var point: String; var forgotten: Bool }

        func run() throws {
            try DiskName.validate(disk)
            let vault = try vaultOptions.open()
            try Prune.forget(vault, disk: disk, point: point, control: lock.control)
            if output.json { printJSON(Forgotten(disk: disk, point: point, forgotten: true)); return }
            print("forgot point \(point) of disk \(disk); diskvault gc frees the chunks no other point needs")
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
    let formats = layout.volumes.map(\.encryption.format).filter { $0 != .none }
    return formats.isEmpty ? "none" : formats.map(\.rawValue).joined(separator: ",")
}
