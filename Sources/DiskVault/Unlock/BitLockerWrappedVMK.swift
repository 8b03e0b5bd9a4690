/// One VMK entry of a volume's FVE metadata, with where its properties lie.
struct VMKCandidate {
    var guid: String
    var protection: UInt16
    var kind: String { BitLockerHeader.protectionKind(protection) }
    /// The metadata block copy's bytes, and the VMK entry's properties within them.
    var block: BitLockerFields
    var properties: Range<Int>

    /// The VMK wrapped under this protector's key: its top-level AES-CCM encrypted key property. (A startup-key
    /// protector also holds a "use key" property with an AES-CCM key nested inside; that one is not the VMK.)
    func wrappedKey(_ volume: VolumeBytes) throws(DiskVaultError) -> BitLockerWrappedVMK {
        let name = "\(kind) protector \(guid)"
        let props = try block.datums(from: properties.lowerBound, to: properties.upperBound, "\(name) properties")
        guard let p = props.first(where: { $0.entryType == 0 && $0.valueType == DatumType.aesCCMEncryptedKey }) else {
            throw volume.corrupt("BitLocker \(name) holds no AES-CCM encrypted VMK")
        }
        let minimum = AESCCM.nonceSize + AESCCM.tagSize
        guard p.dataSize >= minimum else {
            throw volume.corrupt("BitLocker \(name): its AES-CCM encrypted VMK has \(p.dataSize) bytes, "
                + "too few for a nonce and a tag (\(minimum))")
        }
        let nonce = Array(try block.slice(p.data, AESCCM.nonceSize, "\(name) VMK nonce"))
        let tag = Array(try block.slice(p.data + AESCCM.nonceSize, AESCCM.tagSize, "\(name) VMK tag"))
        let ciphertext = Array(try block.slice(p.data + minimum, p.dataSize - minimum, "\(name) VMK ciphertext"))
        return BitLockerWrappedVMK(nonce: nonce, tag: tag, ciphertext: ciphertext)
    }
}

/// A VMK wrapped with AES-CCM, and the reader of a volume's VMK entries.
struct BitLockerWrappedVMK {
    var nonce: [UInt8]
    var tag: [UInt8]
    var ciphertext: [UInt8]

    /// The VMK entries of the volume's first valid FVE metadata block (the copy `BitLockerHeader.read` uses),
    /// or nil when the volume carries no BitLocker signature.
    static func read(_ volume: VolumeBytes) throws(DiskVaultError) -> [VMKCandidate]? {
        guard let metadata = try BitLockerMetadata.read(volume)?.first else { return nil }
        return metadata.vmks.map {
            VMKCandidate(guid: $0.guid, protection: $0.protection, block: metadata.block, properties: $0.properties)
        }
    }
}
