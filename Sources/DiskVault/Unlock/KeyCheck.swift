/// Dispatches a key check to the reader of the volume's format.
public enum KeyCheck {
    public static func check(bek: [UInt8], volume: VolumeBytes, encryption: VolumeEncryption, source: String) throws(DiskVaultError) -> KeyCheckResult {
        switch encryption.format {
        case .luks1, .luks2: return try LUKSKeyCheck.check(key: bek, volume: volume, encryption: encryption)
        case .bitlocker: return try BitLockerKeyCheck.check(bek: bek, bekSource: source, volume: volume)
        default: return .unchecked("a declared volume has no header to check a key against")
        }
    }
}

extension KeyCheck {
    /// A hint for a key that does not fit and ends with a newline (`echo s3cret > f` stores one).
    public static func newlineHint(_ key: [UInt8]) -> String {
        key.last == 0x0A ? " (the key ends with a newline, as `echo` writes: store it without, e.g. with keyvault secret set --strip-newline)" : ""
    }

    /// `keyvault secret set --check IMAGE`: checks `key` against the encrypted volume of `image` it is for — the
    /// one whose LUKS UUID or BitLocker key GUID is `volume`, else the image's only encrypted volume — before it is
    /// stored. Returns the volume's label and how the key opens it; throws, naming the image, when it does not.
    public static func check(key: [UInt8], image: String, volume: String?) throws(DiskVaultError) -> (volume: String, how: String) {
        let source = try ImageSource.open(image, inUse: .allow)
        guard source.size != nil else { throw DiskVaultError(.usage, "--check \(image): a stream has no header to check a key against") }
        let layout = try LayoutReader.read(source: source, declared: LayoutReader.Declaration(), strict: false)
        let encrypted = KeyBackup.encryptedVolumes(layout)
        let chosen: DiskLayout.Volume
        if let volume, let v = encrypted.first(where: { KeyBackup.volumeIDs($0, disk: "").contains { $0.caseInsensitiveCompare(volume) == .orderedSame } }) {
            chosen = v
        } else if encrypted.count == 1 {
            chosen = encrypted[0]
        } else if encrypted.isEmpty {
            throw DiskVaultError(.usage, "--check \(image): no encrypted volume (LUKS or BitLocker) found in it", path: image)
        } else {
            throw DiskVaultError(.usage, "--check \(image): it has \(encrypted.count) encrypted volumes; name the one with --volume", path: image)
        }
        let bytes = VolumeBytes(file: source.bytes, image: source.path, offset: chosen.offset, size: chosen.size)
        switch try check(bek: key, volume: bytes, encryption: chosen.encryption, source: "the key given") {
        case .fits(let how): return (KeyBackup.label(chosen), how)
        case .unchecked(let why): return (KeyBackup.label(chosen), "not checked: \(why)")
        case .doesNotFit(let why):
            throw DiskVaultError(.permission, "the key does not open \(KeyBackup.label(chosen)) of \(image): \(why)\(newlineHint(key)); nothing was stored", path: image)
        }
    }
}
