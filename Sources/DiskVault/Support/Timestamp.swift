import Foundation

/// Times as the vault records them: UTC, ISO 8601, milliseconds.
public enum Timestamp {
    public static func format(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }

    public static func parse(_ text: String) -> Date? {
        if let d = try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text) { return d }
        if let d = try? Date.ISO8601FormatStyle().parse(text) { return d }
        // A bare date means the end of that day, UTC.
        if let d = try? Date.ISO8601FormatStyle().year().month().day().parse(text) { return d.addingTimeInterval(86_399) }
        return nil
    }
}
