import Foundation

/// The current time. DISKVAULT_NOW (ISO 8601) stands in for it, so that schedules and retention can be
/// exercised at chosen moments — a testing aid, recorded in manifests like any other time.
public enum Clock {
    public static func now() -> Date {
        if let text = ProcessInfo.processInfo.environment["DISKVAULT_NOW"], let date = Timestamp.parse(text) { return date }
        return Date()
    }
}
