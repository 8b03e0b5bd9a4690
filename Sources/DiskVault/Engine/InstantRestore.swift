import Foundation

/// Instant restore: a VM starts at once from a qcow2 overlay whose backing file is the point, served read-only
/// over NBD by a `serve` process that outlives the command; `finish` later copies the rest into the overlay,
/// detaches it from the export and stops the export. A guest's writes land in the overlay only; the point never
/// changes.
public enum InstantRestore {
    /// What `start` leaves beside the overlay, `<target>.instant.json`, for `finish`.
    public struct State: Codable, Sendable {
        public var target: String
        public var vault: String
        public var disk: String
        public var point: String
        public var uri: String
        public var socket: String
        public var pid: Int32
        public var startTicks: UInt64
        public var log: String
    }

    public struct Started: Codable, Sendable {
        public var state: State
        public var attachFiles: [String]
        public var size: UInt64
    }

    public struct Finished: Codable, Sendable {
        public var target: String
        public var disk: String
        public var point: String
        public var through: String
        public var seconds: Double
    }

    static func stateFile(_ target: String) -> String { "\(target).instant.json" }
    static func socketPath(_ target: String) -> String { "\(target).nbd.sock" }

    /// Checks what `start` can check before anything is made: a new qcow2 target and the point's key rules.
    public static func check(_ vault: Vault, options: RestoreOptions) throws(DiskVaultError) -> RecoveryPoint {
        guard options.target.hasSuffix(".qcow2") || options.format == .qcow2 else {
            throw DiskVaultError(.usage, "--instant writes a qcow2 overlay: name the target T.qcow2 (or add --format qcow2)")
        }
        if let f = options.format, f != .qcow2 { throw DiskVaultError(.usage, "--instant writes qcow2 only, not --format \(f.rawValue)") }
        guard !options.replace else { throw DiskVaultError(.usage, "--instant writes a new overlay: --replace does not apply") }
        let point = try vault.point(disk: options.disk, id: options.point)
        _ = try Restore(vault: vault, options: options).keysForRestore(point)
        try RestoreTarget.check(options.target, replace: false, sidecars: Reattach.files(for: options.target) + [stateFile(options.target), socketPath(options.target)])
        return point
    }

    /// Starts `serve` (the argv `serveArguments`, to which `--socket` and `--json` are added) in a session of its
    /// own, waits until it listens, and writes the overlay and the re-attach files.
    public static func start(_ vault: Vault, options: RestoreOptions, serveArguments: [String]) throws(DiskVaultError) -> Started {
        let point = try check(vault, options: options)
        let target = FileSystem.absolutePath(options.target)
        let socket = socketPath(target)
        guard socket.utf8.count < 108 else {
            throw DiskVaultError(.usage, "the export's socket \(socket) would be longer than a socket address allows (107 bytes): restore to a shorter path")
        }
        let qemuImg = try ExternalCommand.require("qemu-img", package: "qemu-utils", for: "write the overlay of an instant restore")
        let setsid = try ExternalCommand.require("setsid", package: "util-linux", for: "start the export of an instant restore")
        let log = "\(target).serve.log", out = "\(target).serve.out"
        for f in [log, out] {
            let fd = try FileDescriptor(path: f, flags: O_WRONLY | O_CREAT | O_TRUNC, mode: FileSystem.privateFileMode, doing: "cannot create")
            try fd.close()
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: setsid)
        // A session of its own (no terminal's signal reaches it); setsid stays as its parent until it ends.
        process.arguments = ["--fork", "--wait"] + serveArguments + ["--point", point.id, "--socket", socket, "--json"]
        process.standardInput = FileHandle(forReadingAtPath: "/dev/null")
        process.standardOutput = FileHandle(forWritingAtPath: out)
        process.standardError = FileHandle(forWritingAtPath: log)
        do { try process.run() } catch { throw DiskVaultError(.io, "cannot start the export: \(error)") }
        func failed(_ why: String) -> DiskVaultError {
            // setsid passes no signal on: the export, its child, is stopped by its own pid.
            let children = (try? String(contentsOfFile: "/proc/\(process.processIdentifier)/task/\(process.processIdentifier)/children", encoding: .utf8)) ?? ""
            for child in children.split(separator: " ").compactMap({ Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }) { kill(child, SIGTERM) }
            let said = ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            try? FileSystem.remove(out)
            return DiskVaultError(.io, "the export did not start: \(why)\(said.isEmpty ? "" : ": \(said)")", path: target)
        }
        // The export's own pid is the one it prints (setsid forked it).
        var uri: String?
        var pid = process.processIdentifier
        let deadline = Date().addingTimeInterval(120)
        while uri == nil && Date() < deadline {
            if let text = try? String(contentsOfFile: out, encoding: .utf8), let line = text.split(separator: "\n").first,
                let json = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            {
                uri = json["uri"] as? String
                pid = (json["pid"] as? Int).map(Int32.init) ?? pid
            }
            if uri == nil {
                if !process.isRunning { throw failed("it exited with status \(process.terminationStatus)") }
                usleep(20_000)
            }
        }
        guard let uri else { throw failed("it did not listen within 120 s") }
        try? FileSystem.remove(out)
        let state = State(target: target, vault: vault.location, disk: point.disk, point: point.id, uri: uri, socket: socket,
                          pid: pid, startTicks: ProcessLiveness.startTicks(of: pid) ?? 0, log: log)
        do throws(DiskVaultError) {
            let placeholder = try FileDescriptor(path: target, flags: O_WRONLY | O_CREAT | O_EXCL, mode: FileSystem.privateFileMode, doing: "cannot create")
            try placeholder.close()
            let made = try ExternalCommand.run([qemuImg, "create", "-q", "-f", "qcow2", "-F", "raw", "-b", uri, target])
            guard made.status == 0 else {
                throw DiskVaultError(.io, "qemu-img cannot create the overlay: \(QemuImage.qemuMessage(made.stderr))", path: target)
            }
            try FileSystem.writeFileAtomically(stateFile(target), try JSON.encode(state))
            let files = try Reattach.write(target: target, point: point, keyBackup: point.manifest.keyBackup, keyVault: options.keyVault?.keyVault, format: .qcow2)
            return Started(state: state, attachFiles: files, size: point.manifest.source.size)
        } catch {
            kill(pid, SIGTERM)
            try? FileSystem.remove(target)
            try? FileSystem.remove(stateFile(target))
            throw error
        }
    }

    /// Reads what `start` left beside `target`.
    public static func state(of target: String) throws(DiskVaultError) -> State {
        let file = stateFile(FileSystem.absolutePath(target))
        guard FileSystem.exists(file) else {
            throw DiskVaultError(.notFound, "no instant restore is running into this image (\(file) is missing)", path: target)
        }
        let bytes = try FileSystem.readFile(file, limit: 64 << 10)
        do {
            return try JSONDecoder().decode(State.self, from: Data(bytes))
        } catch {
            throw DiskVaultError(.corrupt, "\(file) is damaged: \(error)", path: target)
        }
    }

    /// Copies into the overlay what it still reads from the export: through qemu's block-stream when a VM runs it
    /// (`qmp`: its monitor socket, `drive`: the node or device of the overlay), else with `qemu-img rebase`
    /// (safe mode), which writes every cluster the overlay lacks. Then the overlay has no backing file, and the
    /// export is stopped.
    public static func finish(target: String, qmp: String?, drive: String?) throws(DiskVaultError) -> Finished {
        let started = Date()
        let state = try state(of: target)
        let path = state.target
        let through: String
        if let qmp {
            guard let drive else { throw DiskVaultError(.usage, "--qmp needs --drive NODE: the VM's node (or device) of \(path)") }
            // qemu says nothing until the stream ends: a day of silence is allowed.
            let client = try QMPClient(socket: qmp, timeout: 86_400_000)
            let job = "diskvault-finish-\(getpid())"
            _ = try client.execute("block-stream", ["job-id": job, "device": drive])
            let event = try client.waitForEvent("BLOCK_JOB_COMPLETED") { $0["device"] as? String == job }
            if let error = (event["data"] as? [String: Any])?["error"] as? String {
                throw DiskVaultError(.io, "qemu's block-stream of \(drive) failed: \(error); the VM still reads the export, which keeps running", path: path)
            }
            through = "block-stream in the running VM"
        } else {
            let qemuImg = try ExternalCommand.require("qemu-img", package: "qemu-utils", for: "finish an instant restore")
            let r = try ExternalCommand.run([qemuImg, "rebase", "-f", "qcow2", "-b", "", path])
            guard r.status == 0 else {
                let why = QemuImage.qemuMessage(r.stderr)
                let hint = why.contains("lock") ? " (a VM has it open: pass --qmp SOCKET --drive NODE to finish through the VM)" : ""
                throw DiskVaultError(.io, "cannot copy the rest into the overlay: \(why)\(hint); the export keeps running", path: path)
            }
            through = "qemu-img rebase"
        }
        // The overlay stands alone now, or the export must keep running.
        let info = try ExternalCommand.run([try ExternalCommand.require("qemu-img", package: "qemu-utils", for: "finish an instant restore"), "info", "-U", "--output=json", path])
        if info.status == 0, info.stdout.contains("\"backing-filename\"") {
            throw DiskVaultError(.io, "the overlay still has a backing file after \(through); the export keeps running", path: path)
        }
        stopExport(state)
        for f in [stateFile(path), state.log] { try? FileSystem.remove(f) }
        return Finished(target: path, disk: state.disk, point: state.point, through: through, seconds: Date().timeIntervalSince(started))
    }

    /// SIGTERM to the export when it is still the process `start` began (not a pid reused since), then waits.
    static func stopExport(_ state: State) {
        guard ProcessLiveness.isRunning(state.pid, startTicks: state.startTicks) else { return }
        kill(state.pid, SIGTERM)
        let deadline = Date().addingTimeInterval(30)
        while ProcessLiveness.isRunning(state.pid, startTicks: state.startTicks) && Date() < deadline { usleep(20_000) }
    }
}
