import Foundation

/// What re-attaching a restored disk to a VM needs, written beside it: a JSON description, a libvirt `<disk>`
/// element and the equivalent qemu `-blockdev` arguments. A disk that is LUKS from its first byte is opened by
/// qemu's own LUKS driver, so libvirt gets `<encryption format='luks'>` with a secret reference; encryption
/// inside partitions (LUKS, BitLocker) is unlocked by the guest and needs nothing here.
public enum Reattach {
    public struct Description: Codable, Sendable {
        public var disk: String
        public var point: String
        public var image: String
        public var format = "raw"
        public var size: UInt64
        public var partitionTable: PartitionTable?
        public var volumes: [Volume]

        public struct Volume: Codable, Sendable {
            public var number: Int
            public var offset: UInt64
            public var size: UInt64
            public var encryption: EncryptionFormat
            public var uuid: String?
            public var guid: String?
            public var keyVault: String?
            public var secret: String?
            public var secretVersion: Int?
            public var wrappedBy: String?
        }
    }

    /// `keyVault` is the key vault the restore used (it holds the point's keys); else the one the backup named.
    /// `format` is the format the restore wrote (by default the point's: raw, or the container it holds).
    static func description(target: String, point: RecoveryPoint, keyBackup: KeyBackupRecord?, keyVault: String? = nil, format: ImageFormat? = nil) -> Description {
        let m = point.manifest
        let keyVaultPath = FileSystem.absolutePath(keyVault ?? keyBackup?.keyVault ?? "")
        let volumes = (m.layout?.volumes ?? []).map { v -> Description.Volume in
            let key = keyBackup?.volumes.first { $0.number == v.number }
            return .init(number: v.number, offset: v.offset, size: v.size, encryption: v.encryption.format,
                         uuid: v.encryption.uuid, guid: v.encryption.guid, keyVault: key == nil ? nil : keyVaultPath,
                         secret: key?.secret, secretVersion: key?.secretVersion, wrappedBy: key?.wrappedBy)
        }
        return Description(disk: m.disk, point: m.id, image: FileSystem.absolutePath(target), format: (format ?? m.source.restoredFormat).rawValue,
                           size: m.source.size, partitionTable: m.layout?.partitionTable, volumes: volumes)
    }

    /// The files re-attaching needs, beside the target: `<target>.attach.json`, `.libvirt.xml`, `.qemu-args`.
    static func files(for target: String) -> [String] {
        ["\(target).attach.json", "\(target).libvirt.xml", "\(target).qemu-args"]
    }

    /// Writes the `files(for:)` of `target`, each naming the absolute paths of the disk and its key vault; their paths.
    static func write(target: String, point: RecoveryPoint, keyBackup: KeyBackupRecord?, keyVault: String? = nil, format: ImageFormat? = nil) throws(DiskVaultError) -> [String] {
        let d = description(target: target, point: point, keyBackup: keyBackup, keyVault: keyVault, format: format)
        let (xml, qemu) = attachment(d, device: "vdb")
        let paths = files(for: target)
        let contents = [try JSON.encode(d), Array(xml.utf8), Array(qemu.utf8)]
        for (path, bytes) in zip(paths, contents) { try FileSystem.writeFileAtomically(path, bytes) }
        return paths
    }

    /// A whole VM's re-attach files in `dir`: `<vm>.libvirt.xml`, a domain with every disk (vda, vdb, …), and
    /// `<vm>.qemu-args`, the qemu command line. Memory, CPUs and networks are the VM's own to fill in.
    public static func writeVM(_ vm: String, disks: [Description], in dir: String) throws(DiskVaultError) -> [String] {
        var xml = "<domain type='kvm'>\n  <name>\(xmlEscape(vm))</name>\n  <memory unit='MiB'>1024</memory>\n  <vcpu>1</vcpu>\n"
        xml += "  <os>\n    <type arch='x86_64'>hvm</type>\n  </os>\n  <devices>\n"
        var qemu = "qemu-system-x86_64 -name \(vm) -machine q35,accel=kvm:tcg -m 1024 -nodefaults"
        var notes: [String] = []
        for (i, d) in disks.enumerated() {
            let dev = "vd" + String(Character(UnicodeScalar(UInt8(97 + min(i, 25)))))
            let (disk, args) = attachment(d, device: dev)
            xml += disk.split(separator: "\n").map { "    \($0)\n" }.joined()
            let lines = args.split(separator: "\n")
            qemu += " \\\n  " + (lines.first.map(String.init) ?? "")
            notes += lines.dropFirst().map(String.init)
        }
        xml += "  </devices>\n</domain>\n"
        qemu += "\n" + notes.map { "\($0)\n" }.joined()
        let paths = ["\(dir)/\(vm).libvirt.xml", "\(dir)/\(vm).qemu-args"]
        for (path, text) in zip(paths, [xml, qemu]) { try FileSystem.writeFileAtomically(path, Array(text.utf8)) }
        return paths
    }

    /// One disk's libvirt `<disk>` element (as target `device`) and its qemu arguments (then any note lines).
    static func attachment(_ d: Description, device: String) -> (String, String) {
        let absolute = d.image
        let wholeDiskLUKS = d.volumes.count == 1 && d.volumes[0].number == 0 && d.volumes[0].encryption.isLUKS
        // A qcow2 that qemu encrypts: its qcow2 driver opens the LUKS inside it (encrypt.format=luks).
        let qcow2 = d.format == ImageFormat.qcow2.rawValue
        let usage = "diskvault/\(d.disk)/\(d.volumes.first?.secret ?? "key")"
        var xml = "<disk type='file' device='disk'>\n  <driver name='qemu' type='\(d.format)'/>\n  <source file='\(xmlEscape(absolute))'"
        if wholeDiskLUKS {
            xml += ">\n    <encryption format='luks'>\n      <secret type='passphrase' usage='\(xmlEscape(usage))'/>\n    </encryption>\n  </source>\n"
        } else {
            xml += "/>\n"
        }
        xml += "  <target dev='\(device)' bus='virtio'/>\n</disk>\n"
        var qemu = "-blockdev driver=file,node-name=\(d.disk)-file,filename=\(absolute)"
        if wholeDiskLUKS && qcow2 {
            qemu = "-object secret,id=\(d.disk)-key,file=KEYFILE \(qemu) -blockdev driver=qcow2,node-name=\(d.disk),file=\(d.disk)-file,encrypt.format=luks,encrypt.key-secret=\(d.disk)-key"
        } else if wholeDiskLUKS {
            qemu = "-object secret,id=\(d.disk)-key,file=KEYFILE \(qemu) -blockdev driver=luks,node-name=\(d.disk),file=\(d.disk)-file,key-secret=\(d.disk)-key"
        } else {
            qemu += " -blockdev driver=\(d.format),node-name=\(d.disk),file=\(d.disk)-file"
        }
        qemu += " -device virtio-blk-pci,drive=\(d.disk)\n"
        if wholeDiskLUKS {
            qemu += "# KEYFILE: the LUKS passphrase, e.g. from `diskvault restore … --export-key KEYFILE`; libvirt: define a secret with usage '\(usage)'\n"
        }
        return (xml, qemu)
    }

    static func xmlEscape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "'", with: "&apos;")
            .replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
