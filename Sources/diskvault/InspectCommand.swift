import ArgumentParser
import DiskVault

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show an image's partition table and each volume's encryption, read without any key.",
        discussion: """
            Reads MBR (with logical partitions), GPT (both headers), LUKS1, LUKS2 and BitLocker headers. Never decrypts. \
            A qcow2 or other format qemu reads is read as the VM sees it (through qemu-nbd); a qcow2 that qemu \
            encrypts shows the LUKS header inside it.

            Examples:
              diskvault inspect vm.qcow2
              diskvault inspect /dev/sdb --json
            """
    )

    @Argument(help: "The image: a file, a block device, or an NBD URI.")
    var image: String

    @Option(name: .long, help: "The image's format, when its header should not decide: raw, qcow2, qed, vmdk, vdi, vhdx, vpc.")
    var format: String?

    @Option(name: .long, help: "Treat volumes without a header as encrypted: disk, all, or partition numbers (1,3).")
    var declareEncrypted: String?

    @OptionGroup var output: OutputOptions

    func run() throws {
        let declared = try declareEncrypted.map { try LayoutReader.Declaration(parsing: $0) } ?? .init()
        let forced = try format.map { (value) throws(DiskVaultError) in try ImageFormat.parse(option: value) }
        let source = try ImageSource.open(image, format: forced)
        var layout = try LayoutReader.read(source: source, declared: declared, strict: true)
        layout.format = source.format == .raw ? nil : source.format
        layout.chain = source.chain.isEmpty ? nil : source.chain
        if output.json {
            printJSON(layout)
            return
        }
        print("image \(layout.image) (\(ByteCount.format(layout.size)))")
        if source.format != .raw {
            let what = source.contents == .container
                ? "\(source.format.rawValue), encrypted by qemu: its file of \(ByteCount.format(source.fileSize ?? 0)) is what a backup keeps"
                : "\(source.format.rawValue), read through qemu: the disk a VM sees"
            print("format: \(what)")
            for link in source.chain.dropFirst() { print("backing file: \(link.path) (\(link.format))") }
        }
        print("partition table: \(layout.partitionTable)\(layout.diskGUID.map { " (disk GUID \($0))" } ?? "")")
        let rows = layout.volumes.map { v -> [String] in
            [v.number == 0 ? "disk" : String(v.number), String(v.offset), ByteCount.format(v.size),
             v.typeName ?? v.type ?? "-", summary(v.encryption)]
        }
        printTable(["VOLUME", "OFFSET", "SIZE", "TYPE", "ENCRYPTION"], rows)
        let warnings = layout.warnings + layout.volumes.flatMap { $0.encryption.warnings ?? [] }
        for w in warnings { print("warning: \(w)") }
    }
}

/// One line about a volume's encryption.
func summary(_ e: VolumeEncryption) -> String {
    switch e.format {
    case .luks1, .luks2:
        let slots = (e.keyslots ?? []).filter(\.active)
        let kdfs = Set(slots.compactMap(\.kdf)).sorted().joined(separator: "/")
        return "\(e.format) \(e.cipher ?? "?") \((e.keyBytes ?? 0) * 8)-bit, sector \(e.sectorSize ?? 0), payload at \(e.payloadOffset ?? 0), uuid \(e.uuid ?? "?"), \(slots.count) key slot\(slots.count == 1 ? "" : "s") (\(kdfs))"
    case .bitlocker:
        let protectors = (e.protectors ?? []).map { "\($0.kind) {\($0.guid)}" }.joined(separator: ", ")
        return "bitlocker\(e.toGo == true ? " to go" : "") \(e.cipher ?? "?") \(e.keyBits ?? 0)-bit, sector \(e.sectorSize ?? 0), guid \(e.guid ?? "?"); protectors: \(protectors)"
    default:
        return e.format.rawValue
    }
}
