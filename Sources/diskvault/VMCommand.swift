import ArgumentParser
import DiskVault
import Foundation

struct VMCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vm",
        abstract: "Back up, list, verify, restore and forget a VM's disks as one point.",
        discussion: """
            A VM point holds one point of each of the VM's disks (kept in the vault as disks <vm>.<disk>). From a \
            running qemu (--qmp) every disk is taken in one transaction, so the disks are consistent with each other; \
            a stopped VM's image files are read one after the other while qemu's locks keep the VM from starting. \
            A VM point is pruned, verified and restored as a unit.

            Examples:
              diskvault vm backup web --qmp /run/vm/web.qmp --vault /backup/v
              diskvault vm backup web --disk os=/var/lib/images/web-os.qcow2 --disk data=/var/lib/images/web-data.raw --vault /backup/v
              diskvault vm points web --vault /backup/v
              diskvault vm restore web --vault /backup/v --target-dir /var/lib/images/web-restored
            """,
        subcommands: [Backup.self, Points.self, Verify.self, Restore.self, Forget.self])

    struct Backup: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "backup",
            abstract: "Back up every disk of a VM as one point.",
            discussion: """
                With --qmp, every drive of that qemu (or those --disk NAME=DRIVE names), each named by its qdev id \
                (vda) unless --disk names it; incremental from qemu's dirty bitmaps like backup --qmp. Without \
                --qmp, --disk NAME=IMAGE for each image file of the stopped VM.

                Examples:
                  diskvault vm backup web --qmp /run/vm/web.qmp --vault /backup/v --json
                """)

        @Argument(help: "The VM's name (letters, digits, '.', '_', '-').")
        var name: String

        @OptionGroup var vaultOptions: VaultOptions

        @Option(name: .long, help: ArgumentHelp("A disk of the VM: NAME=DRIVE with --qmp, NAME=IMAGE without (repeat for each disk).", valueName: "name=what"))
        var disk: [String] = []

        @Option(name: .long, help: "Keep this point until the date (YYYY-MM-DD or ISO 8601), whatever the policy.")
        var retainUntil: String?

        @OptionGroup var keys: KeyVaultAccessOptions
        @OptionGroup var live: LiveOptions
        @OptionGroup var threads: ThreadOptions
        @OptionGroup var lock: LockOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            try DiskName.validate(name)
            var options = BackupOptions(disk: name)
            options.now = Clock.now()
            options.retainUntil = try retainUntil.map { (text) throws(DiskVaultError) in try parseRetainUntil(text, now: options.now) }
            options.threads = try threads.count()
            options.keyVault = try keys.access()
            let pairs = try disk.map { (text) throws -> (String, String) in
                guard let eq = text.firstIndex(of: "="), eq != text.startIndex, text.index(after: eq) != text.endIndex else {
                    throw DiskVaultError(.usage, "--disk \(text): give NAME=DRIVE (with --qmp) or NAME=IMAGE")
                }
                return (String(text[..<eq]), String(text[text.index(after: eq)...]))
            }
            let vault = try vaultOptions.open()
            let result = try withProgress("vm backup \(name)") { progress -> VMBackup.Result in
                if let qmp = live.qmp {
                    let o = try live.options(qmp: qmp, drives: [], base: options)
                    return try VMBackup.live(vault, vm: name, qmp: o.qmp, names: pairs, options: o, observer: progress, control: lock.control)
                }
                try live.checkUnused()
                return try VMBackup.stopped(vault, vm: name, images: pairs, options: options, observer: progress, control: lock.control)
            }
            for w in result.warnings { Terminal.warning(w) }
            if output.json {
                printJSON(result)
                return
            }
            for n in result.notes { print(n) }
            print("VM point \(result.point.id) of \(name): \(result.point.disks.count) disks, \(result.point.consistency.rawValue)")
            for m in result.manifests {
                print("")
                printSummary(m)
            }
        }
    }

    struct Points: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "points",
            abstract: "List a VM's points (or every VM's), oldest first.",
            discussion: """
            Examples:
              diskvault vm points web --vault /backup/v
              diskvault vm points --vault /backup/v --json
            """)
        @Argument(help: "The VM (default: every VM).") var name: String?
        @OptionGroup var vaultOptions: VaultOptions
        @OptionGroup var output: OutputOptions

        struct Listing: Encodable { var points: [VMPoint] }

        func run() throws {
            let vault = try vaultOptions.open()
            var all: [VMPoint] = []
            for vm in try name.map({ [$0] }) ?? vault.vms() {
                let scan = try vault.scanVMPoints(vm)
                all += scan.points
                for d in scan.damaged {
                    Terminal.warning("VM point \(vm)@\(d.id) is damaged: \(d.problem) (diskvault vm forget \(vm) --point \(d.id) removes its record)")
                }
            }
            if output.json {
                printJSON(Listing(points: all))
                return
            }
            guard !all.isEmpty else {
                print("no VM points\(name.map { " for VM \($0)" } ?? "")")
                return
            }
            printTable(["VM", "POINT", "CREATED", "TAKEN", "DISKS"], all.map { p in
                [p.vm, p.id, String(p.created.prefix(19)).replacingOccurrences(of: "T", with: " "), p.consistency.rawValue,
                 p.disks.map { "\($0.name) (\(ByteCount.format($0.size)))" }.joined(separator: ", ")]
            })
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "verify",
            abstract: "Verify every disk point of a VM point.",
            discussion: """
            Examples:
              diskvault vm verify web --vault /backup/v --point latest
            """)
        @Argument(help: "The VM.") var name: String
        @OptionGroup var vaultOptions: VaultOptions
        @Option(name: .long, help: "VM point id, or latest.") var point = "latest"
        @OptionGroup var keys: KeyVaultAccessOptions
        @OptionGroup var threads: ThreadOptions
        @OptionGroup var lock: LockOptions
        @OptionGroup var output: OutputOptions

        struct Report: Encodable {
            var vm: String
            var point: String
            var disks: [VerifyReport]
            var ok: Bool
        }

        func run() throws {
            let vault = try vaultOptions.open()
            let p = try vault.vmPoint(name, id: point)
            var reports: [VerifyReport] = []
            for m in p.disks {
                var o = VerifyOptions(disk: m.disk, point: m.point)
                o.threads = try threads.count()
                o.keyVault = try keys.access()
                reports.append(try DiskVault.Verify(vault: vault, options: o).run(lock.control))
            }
            let ok = reports.allSatisfy(\.ok)
            if output.json {
                printJSON(Report(vm: name, point: p.id, disks: reports, ok: ok))
            } else {
                for (m, r) in zip(p.disks, reports) {
                    for problem in r.problems { print("\(problem.kind.rawValue.uppercased()): \(problem.message)") }
                    print("\(m.name): \(r.chunksChecked) chunks, \(ByteCount.format(r.bytesChecked)): \(r.ok ? "ok" : "\(r.problems.count) problems")")
                }
                print("VM point \(p.id) of \(name): \(ok ? "ok" : "damaged")")
            }
            if !ok { throw CommandFailed(status: 1) }
        }
    }

    struct Restore: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "restore",
            abstract: "Restore every disk of a VM point into a folder, with one re-attach template for the VM.",
            discussion: """
                Each disk is restored as <dir>/<disk>.raw (or .qcow2), checked and renamed into place as restore does, \
                with the encryption rules per disk (an encrypted disk needs --keyvault, --principal and \
                --credential). <dir>/<vm>.libvirt.xml is a libvirt domain naming every disk; <dir>/<vm>.qemu-args the \
                qemu command line.

                Examples:
                  diskvault vm restore web --vault /backup/v --point latest --target-dir /var/lib/libvirt/images/web-restored
                """)
        @Argument(help: "The VM.") var name: String
        @OptionGroup var vaultOptions: VaultOptions
        @Option(name: .long, help: "VM point id, or latest.") var point = "latest"
        @Option(name: .long, help: ArgumentHelp("The folder to write the disks into (made if missing; existing disk files are not overwritten).", valueName: "dir"))
        var targetDir: String
        @Option(name: .long, help: "The format to write: raw or qcow2 (default: each point's own).") var format: String?
        @OptionGroup var keys: KeyVaultAccessOptions
        @OptionGroup var threads: ThreadOptions
        @OptionGroup var lock: LockOptions
        @OptionGroup var output: OutputOptions

        struct Result: Encodable {
            var vm: String
            var point: String
            var disks: [RestoreResult]
            var attachFiles: [String]
        }

        func run() throws {
            let vault = try vaultOptions.open()
            let p = try vault.vmPoint(name, id: point)
            let dir = FileSystem.absolutePath(targetDir)
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            var forced: ImageFormat? = nil
            if let format {
                guard let f = ImageFormat(rawValue: format), f == .raw || f == .qcow2 else {
                    throw DiskVaultError(.usage, "--format \(format): a restore writes raw or qcow2")
                }
                forced = f
            }
            var results: [RestoreResult] = []
            var descriptions: [Reattach.Description] = []
            for m in p.disks {
                let manifest = try vault.point(disk: m.disk, id: m.point).manifest
                let written = forced ?? manifest.source.restoredFormat
                var o = RestoreOptions(disk: m.disk, point: m.point, target: "\(dir)/\(m.name).\(written == .qcow2 ? "qcow2" : "raw")")
                o.threads = try threads.count()
                o.keyVault = try keys.access()
                o.format = forced
                let r = try withProgress("restore \(m.name)") { progress in
                    let restore = DiskVault.Restore(vault: vault, options: o)
                    restore.observer = progress
                    return try restore.run(lock.control)
                }
                for w in r.warnings { Terminal.warning(w) }
                results.append(r)
                guard let json = r.attachFiles.first(where: { $0.hasSuffix(".attach.json") }),
                      let d = try? JSONDecoder().decode(Reattach.Description.self, from: Data(contentsOf: URL(fileURLWithPath: json)))
                else { throw DiskVaultError(.io, "the restore of disk \(m.name) wrote no re-attach description", path: dir) }
                descriptions.append(d)
            }
            let files = try Reattach.writeVM(name, disks: descriptions, in: dir)
            if output.json {
                printJSON(Result(vm: name, point: p.id, disks: results, attachFiles: files))
                return
            }
            print("restored VM \(name) point \(p.id) into \(dir)")
            for (m, r) in zip(p.disks, results) {
                print("  \(m.name)  \(r.target) (\(ByteCount.format(r.size)) in \(seconds(r.seconds)))")
            }
            print("  attach   \(files.joined(separator: ", "))")
        }
    }

    struct Forget: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "forget",
            abstract: "Remove a VM point: every disk point it holds, then its record.",
            discussion: """
            Examples:
              diskvault vm forget web --vault /backup/v --point 20261201T020000Z-1a2b
            """)
        @Argument(help: "The VM.") var name: String
        @OptionGroup var vaultOptions: VaultOptions
        @Option(name: .long, help: "VM point id.") var point: String
        @OptionGroup var lock: LockOptions

        @OptionGroup var output: OutputOptions
        func run() throws {
            guard let p = try Prune.forgetVM(try vaultOptions.open(), vm: name, point: point, control: lock.control) else {
                output.done("removed the damaged record of VM point \(point) of \(name); its disk points stay", ["vm": name, "point": point])
                return
            }
            output.done("forgot VM point \(p.id) of \(name) (\(p.disks.count) disk points); diskvault gc frees their chunks", ["vm": name, "point": p.id])
        }
    }
}
