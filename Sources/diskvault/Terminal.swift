#if canImport(Glibc)
import Glibc
#endif
import Foundation
import DiskVault

enum Environment {
    static func value(_ name: String) -> String? {
        ProcessInfo.processInfo.environment[name]
    }
}

enum Terminal {
    static func error(_ message: String) {
        FileHandle.standardError.write(Data("diskvault: error: \(message)\n".utf8))
    }

    static func raw(_ text: String) {
        FileHandle.standardError.write(Data((text.hasSuffix("\n") ? text : text + "\n").utf8))
    }

    static func warning(_ message: String) {
        FileHandle.standardError.write(Data("diskvault: warning: \(message)\n".utf8))
    }

    static var stderrIsTTY: Bool { isatty(2) == 1 }
}

/// Progress on standard error when it is a terminal, on one line cut to the terminal's width: bytes done of
/// the total, percent, the rate over the last seconds, an ETA from that rate, and for a backup the new and
/// stored bytes; silent otherwise. Cleared when the work ends.
final class TerminalProgress: ProgressObserver, @unchecked Sendable {
    private let label: String
    private let lock = NSLock()
    private let started = Date()
    private var lastDraw = Date.distantPast
    private var drew = false
    /// (time, bytes done) samples of the last few seconds, for a rate that follows the work's present speed.
    private var samples: [(Date, UInt64)] = []

    init(_ label: String) { self.label = label }

    /// A progress line for `label`, or nil when standard error is not a terminal.
    static func make(_ label: String) -> TerminalProgress? {
        Terminal.stderrIsTTY ? TerminalProgress(label) : nil
    }

    /// The terminal's width in columns (80 when it cannot be asked).
    static var columns: Int {
        var size = winsize()
        if ioctl(2, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 { return Int(size.ws_col) }
        return 80
    }

    func progress(done: UInt64, total: UInt64?) {
        draw(done: done, total: total, new: nil, stored: nil)
    }

    func progress(done: UInt64, total: UInt64?, new: UInt64, stored: UInt64) {
        draw(done: done, total: total, new: new, stored: stored)
    }

    private func draw(done: UInt64, total: UInt64?, new: UInt64?, stored: UInt64?) {
        lock.lock()
        defer { lock.unlock() }
        let now = Date()
        guard now.timeIntervalSince(lastDraw) >= 0.25 else { return }
        lastDraw = now
        samples.append((now, done))
        while let first = samples.first, now.timeIntervalSince(first.0) > 5, samples.count > 2 { samples.removeFirst() }
        let line = Self.line(label: label, done: done, total: total, new: new, stored: stored, rate: rate(now: now, done: done),
                             elapsed: now.timeIntervalSince(started), columns: Self.columns)
        FileHandle.standardError.write(Data("\r\u{1B}[K\(line)".utf8))
        drew = true
    }

    /// Bytes a second over the samples kept (the whole run until there are two samples).
    private func rate(now: Date, done: UInt64) -> Double {
        if samples.count >= 2, let first = samples.first, now.timeIntervalSince(first.0) > 0.5, done >= first.1 {
            return Double(done - first.1) / now.timeIntervalSince(first.0)
        }
        return Double(done) / max(now.timeIntervalSince(started), 0.001)
    }

    /// The line, its parts dropped from the least useful until it fits in `columns - 1` (the cursor's column).
    static func line(label: String, done: UInt64, total: UInt64?, new: UInt64?, stored: UInt64?, rate: Double, elapsed: TimeInterval,
                     columns: Int) -> String {
        var parts: [(text: String, priority: Int)] = [(label, 0)]
        if let total, total > 0 {
            let percent = min(100, Int(Double(done) * 100 / Double(total)))
            parts.append(("\(percent)%", 1))
            parts.append(("\(ByteCount.format(done)) / \(ByteCount.format(total))", 2))
            if done < total {
                // Not before a second of work: the first moments (holes, a warm cache) say little of what follows.
                if rate > 0, elapsed >= 1 {
                    let eta = Int((Double(total - done) / rate).rounded(.up))
                    parts.append(("ETA \(eta / 60):\(eta % 60 < 10 ? "0" : "")\(eta % 60)", 3))
                } else {
                    parts.append(("ETA -", 3))
                }
            }
        } else {
            parts.append((ByteCount.format(done), 2))
        }
        parts.append((ByteCount.formatRate(rate), 4))
        if let new { parts.append(("new \(ByteCount.format(new))", 5)) }
        if let stored { parts.append(("stored \(ByteCount.format(stored))", 6)) }
        let room = max(columns - 1, 1)
        func joined() -> String { parts.map(\.text).joined(separator: "  ") }
        while joined().count > room, parts.count > 1, let worst = parts.indices.max(by: { parts[$0].priority < parts[$1].priority }) {
            parts.remove(at: worst)
        }
        let text = joined()
        return text.count > room ? String(text.prefix(room)) : text
    }

    func finish() {
        lock.lock()
        defer { lock.unlock() }
        if drew { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}

/// Runs long work with a progress line on a terminal, cleared when the work ends, however it ends.
func withProgress<T>(_ label: String, _ body: ((any ProgressObserver)?) throws -> T) rethrows -> T {
    let progress = TerminalProgress.make(label)
    defer { progress?.finish() }
    return try body(progress)
}

/// The JSON contract: with --json a command prints exactly one JSON object on standard output, its result or,
/// when it fails before printing one, `{"error": {"code", "message", "path", "exitStatus"}}`.
enum JSONOutput {
    /// --json is among the arguments (before any `--`).
    static let requested = CommandLine.arguments.dropFirst().prefix(while: { $0 != "--" }).contains("--json")
    nonisolated(unsafe) static var printed = false

    struct Failure: Encodable {
        struct Body: Encodable {
            var code: String
            var message: String
            var path: String?
            var exitStatus: Int32
        }
        var error: Body
    }

    /// Prints the error object unless this run printed its object already.
    static func fail(code: String, message: String, path: String?, exitStatus: Int32) {
        guard requested, !printed else { return }
        printJSON(Failure(error: .init(code: code, message: message, path: path, exitStatus: exitStatus)))
    }
}

func printJSON<T: Encodable>(_ value: T) {
    JSONOutput.printed = true
    print(JSON.string(value, pretty: true), terminator: "")
}

/// What a command that changes something prints with --json: what it did, and its fields.
struct Done<Fields: Encodable>: Encodable {
    var ok = true
    var message: String
    var result: Fields
}

extension OutputOptions {
    /// Prints `message` as text, or with --json as `{"ok": true, "message", "result": fields}`.
    func done<Fields: Encodable>(_ message: String, _ fields: Fields) {
        if json { printJSON(Done(message: message, result: fields)) } else { print(message) }
    }

    func done(_ message: String) {
        done(message, [String: String]())
    }
}

func seconds(_ s: Double) -> String {
    String(format: "%.2f s", s)
}

func rate(_ bytes: UInt64, _ s: Double) -> String {
    s > 0 ? ByteCount.formatRate(Double(bytes) / s) : "-"
}
