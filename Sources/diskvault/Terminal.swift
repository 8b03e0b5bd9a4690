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

/// Progress on standard error when it is a terminal (bytes, percent, rate, ETA); silent otherwise.
final class TerminalProgress: ProgressObserver, @unchecked Sendable {
    private let label: String
    private let lock = NSLock()
    private let started = Date()
    private var lastDraw = Date.distantPast
    private var drew = false

    init(_ label: String) { self.label = label }

    /// A progress line for `label`, or nil when standard error is not a terminal.
    static func make(_ label: String) -> TerminalProgress? {
        Terminal.stderrIsTTY ? TerminalProgress(label) : nil
    }

    func progress(done: UInt64, total: UInt64?) {
        lock.lock()
        defer { lock.unlock() }
        let now = Date()
        guard now.timeIntervalSince(lastDraw) >= 0.25 else { return }
        lastDraw = now
        let elapsed = max(now.timeIntervalSince(started), 0.001)
        let rate = Double(done) / elapsed
        var line = "\(label)  \(ByteCount.format(done))"
        if let total, total > 0 {
            let percent = Int(Double(done) * 100 / Double(total))
            line += " / \(ByteCount.format(total))  \(percent)%"
            if rate > 0 && done < total {
                let eta = Int(Double(total - done) / rate)
                line += "  ETA \(eta / 60):\(eta % 60 < 10 ? "0" : "")\(eta % 60)"
            }
        }
        line += "  \(ByteCount.formatRate(rate))"
        FileHandle.standardError.write(Data("\r\u{1B}[K\(line)".utf8))
        drew = true
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

func printJSON<T: Encodable>(_ value: T) {
    print(JSON.string(value, pretty: true), terminator: "")
}

func seconds(_ s: Double) -> String {
    String(format: "%.2f s", s)
}

func rate(_ bytes: UInt64, _ s: Double) -> String {
    s > 0 ? ByteCount.formatRate(Double(bytes) / s) : "-"
}
