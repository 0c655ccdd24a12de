//! Signed checkpoints: C2SP `tlog-checkpoint` bodies in C2SP `signed-note`
//! envelopes, signed with Ed25519 (through the `signed_note` and
//! `tlog_tiles` crates). A checkpoint commits the ledger to its first `size`
//! events: anyone holding the verifier key can check it offline.
//!
//! Keys use the note formats: the signer key `PRIVATE+KEY+<name>+<id>+<base64>`
//! and the verifier key `<name>+<id>+<base64(0x01 || public key)>`. The key's
//! name is the log's origin, the first line of every checkpoint.

use signed_note::{Note, Signer, StandardSigner, StandardVerifier, VerifierList};
use tlog_tiles::Checkpoint;

use crate::merkle::{Hash, from_base64, to_base64};

/// Why a checkpoint or key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("the signing key is malformed: {0}")]
    SignerKey(String),
    #[error("the verifier key is malformed ({0}); it looks like <origin>+<8 hex digits>+<base64>")]
    VerifierKey(String),
    #[error("the checkpoint is not a well-formed signed note: {0}")]
    Malformed(String),
    #[error("the checkpoint's signature does not verify with this key: {0}")]
    BadSignature(String),
    #[error("the checkpoint's origin {found:?} is not the key's {expected:?}")]
    WrongOrigin { expected: String, found: String },
}

/// A checkpoint whose signature has been checked (or that was just signed).
#[derive(Debug, Clone, PartialEq)]
pub struct SignedCheckpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
    /// The whole signed note, as served at `GET /v1/checkpoint`.
    pub note: String,
}

/// The log's signing key.
pub struct CheckpointSigner {
    signer: StandardSigner,
    verifier_key: String,
}

impl CheckpointSigner {
    /// From a signer key and its verifier key (as `signed_note::generate_key`
    /// makes them).
    pub fn new(signer_key: &str, verifier_key: &str) -> Result<CheckpointSigner, CheckpointError> {
        let signer = StandardSigner::new(signer_key.trim()).map_err(|e| CheckpointError::SignerKey(e.to_string()))?;
        let verifier_key = verifier_key.trim().to_owned();
        let verifier = StandardVerifier::new(&verifier_key).map_err(|e| CheckpointError::VerifierKey(e.to_string()))?;
        use signed_note::Verifier;
        if verifier.name() != signer.name() || verifier.key_id() != signer.key_id() {
            return Err(CheckpointError::SignerKey("it does not belong to the verifier key".into()));
        }
        Ok(CheckpointSigner { signer, verifier_key })
    }

    /// From a signer key alone: the verifier key is derived from it.
    pub fn from_signer_key(signer_key: &str) -> Result<CheckpointSigner, CheckpointError> {
        use base64::Engine;
        let bad = |why: &str| CheckpointError::SignerKey(why.to_owned());
        let parts: Vec<&str> = signer_key.trim().splitn(5, '+').collect();
        let [_, _, name, _, key] = parts.as_slice() else {
            return Err(bad("expected PRIVATE+KEY+<name>+<id>+<base64>"));
        };
        let key = base64::engine::general_purpose::STANDARD.decode(key).map_err(|_| bad("the key is not base64"))?;
        let seed: [u8; 32] = match key.split_first() {
            Some((1, seed)) => seed.try_into().map_err(|_| bad("an Ed25519 key has 32 bytes"))?,
            _ => return Err(bad("only Ed25519 keys (algorithm 1) are supported")),
        };
        let verifier_key =
            signed_note::new_ed25519_verifier_key(name, &ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key());
        CheckpointSigner::new(signer_key, &verifier_key)
    }

    pub fn origin(&self) -> &str {
        self.signer.name()
    }

    /// `<origin>+<key id>+<base64(0x01 || public key)>`.
    pub fn verifier_key(&self) -> &str {
        &self.verifier_key
    }

    pub fn sign(&self, size: u64, root: Hash) -> Result<SignedCheckpoint, CheckpointError> {
        let body =
            Checkpoint::new(self.origin(), size, root, "").map_err(|e| CheckpointError::Malformed(e.to_string()))?;
        let mut note = Note::new(&body.to_bytes(), &[]).map_err(|e| CheckpointError::Malformed(e.to_string()))?;
        note.add_sigs(&[&self.signer]).map_err(|e| CheckpointError::Malformed(e.to_string()))?;
        let note = String::from_utf8(note.to_bytes()).map_err(|e| CheckpointError::Malformed(e.to_string()))?;
        Ok(SignedCheckpoint { origin: self.origin().to_owned(), size, root, note })
    }
}

/// Check a checkpoint's signature with a verifier key and read it.
pub fn open_checkpoint(note: &str, verifier_key: &str) -> Result<SignedCheckpoint, CheckpointError> {
    let verifier =
        StandardVerifier::new(verifier_key.trim()).map_err(|e| CheckpointError::VerifierKey(e.to_string()))?;
    let origin = {
        use signed_note::Verifier;
        verifier.name().to_owned()
    };
    let parsed = Note::from_bytes(note.as_bytes()).map_err(|e| CheckpointError::Malformed(e.to_string()))?;
    parsed
        .verify(&VerifierList::new(vec![Box::new(verifier)]))
        .map_err(|e| CheckpointError::BadSignature(e.to_string()))?;
    let body = Checkpoint::from_bytes(parsed.text()).map_err(|e| CheckpointError::Malformed(e.to_string()))?;
    if body.origin() != origin {
        return Err(CheckpointError::WrongOrigin { expected: origin, found: body.origin().to_owned() });
    }
    Ok(SignedCheckpoint { origin, size: body.size(), root: *body.hash(), note: note.to_owned() })
}

/// The (origin, size, root) a checkpoint claims, without checking its
/// signature: for showing a checkpoint, never for trusting one.
pub fn read_unverified(note: &str) -> Result<(String, u64, Hash), CheckpointError> {
    let mut lines = note.lines();
    let mut next = |what: &str| lines.next().ok_or_else(|| CheckpointError::Malformed(format!("no {what} line")));
    let origin = next("origin")?.to_owned();
    let size = next("size")?.parse().map_err(|_| CheckpointError::Malformed("the size is not a number".into()))?;
    let root =
        from_base64(next("root hash")?).ok_or_else(|| CheckpointError::Malformed("the root is not base64".into()))?;
    Ok((origin, size, root))
}

/// `<origin>\n<size>\n<base64 root>\n`, the body a checkpoint signs.
pub fn body_text(origin: &str, size: u64, root: &Hash) -> String {
    format!("{origin}\n{size}\n{}\n", to_base64(root))
}

/// A new key pair for a log named `origin`, from 32 secret random bytes
/// (the caller brings the randomness: the core has no source of it).
/// Returns `(signer key, verifier key)`.
pub fn keys_from_seed(origin: &str, seed: [u8; 32]) -> Result<(String, String), CheckpointError> {
    use base64::Engine;
    if !signed_note::is_key_name_valid(origin) {
        return Err(CheckpointError::SignerKey(format!(
            "{origin:?} cannot name a log: it must be non-empty, without spaces or '+'"
        )));
    }
    let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
    let verifier_key = signed_note::new_ed25519_verifier_key(origin, &signing.verifying_key());
    let public = [&[1u8][..], signing.verifying_key().as_bytes()].concat();
    let private = [&[1u8][..], &seed[..]].concat();
    let signer_key = format!(
        "PRIVATE+KEY+{origin}+{:08x}+{}",
        signed_note::key_id(origin, &public),
        base64::engine::general_purpose::STANDARD.encode(private)
    );
    Ok((signer_key, verifier_key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::record_hash;

    #[test]
    fn a_signed_checkpoint_opens_with_its_key_only() {
        let (skey, vkey) = keys_from_seed("shiplog.test/ledger", [7; 32]).unwrap();
        assert!(vkey.starts_with("shiplog.test/ledger+"), "{vkey}");
        let signer = CheckpointSigner::new(&skey, &vkey).unwrap();
        let root = record_hash(b"root");
        let cp = signer.sign(42, root).unwrap();
        assert!(cp.note.starts_with(&body_text("shiplog.test/ledger", 42, &root)), "{}", cp.note);
        assert!(cp.note.contains("\n\n\u{2014} shiplog.test/ledger "), "{}", cp.note);

        let opened = open_checkpoint(&cp.note, &vkey).unwrap();
        assert_eq!((opened.size, opened.root), (42, root));
        assert_eq!(read_unverified(&cp.note).unwrap(), ("shiplog.test/ledger".to_owned(), 42, root));

        let altered = cp.note.replacen("\n42\n", "\n43\n", 1);
        assert!(matches!(open_checkpoint(&altered, &vkey), Err(CheckpointError::BadSignature(_))), "altered body");

        let (_, other_vkey) = keys_from_seed("shiplog.test/ledger", [9; 32]).unwrap();
        assert!(matches!(open_checkpoint(&cp.note, &other_vkey), Err(CheckpointError::BadSignature(_))), "wrong key");
        assert!(matches!(open_checkpoint(&cp.note, "nonsense"), Err(CheckpointError::VerifierKey(_))));

        let derived = CheckpointSigner::from_signer_key(&skey).unwrap();
        assert_eq!(derived.verifier_key(), vkey);
        // Base64 has '+' in its alphabet: keys whose base64 holds one load too.
        for seed in 0..32u8 {
            let (skey, vkey) = keys_from_seed("shiplog.test/ledger", [seed; 32]).unwrap();
            assert_eq!(CheckpointSigner::from_signer_key(&skey).unwrap().verifier_key(), vkey, "seed {seed}");
        }

        let (other_skey, _) = keys_from_seed("shiplog.test/ledger", [9; 32]).unwrap();
        assert!(CheckpointSigner::new(&other_skey, &vkey).is_err(), "a signer key must match its verifier key");
        assert!(keys_from_seed("has space", [1; 32]).is_err());
    }
}
