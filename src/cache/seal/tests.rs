use super::*;

fn key(byte: u8) -> CacheKey {
    CacheKey::from_bytes(&[byte; key::KEY_LEN])
}

fn binding<'a>(k: &'a [u8], refs: &'a [BlobRef]) -> Binding<'a> {
    Binding {
        record_type: RecordType::Entry,
        kind: 1,
        codec: SEALED_CODEC_BIT | 2,
        key: k,
        name: b"tiny",
        refs,
        raw_len: 11,
    }
}

const ALGORITHMS: [Algorithm; 2] = [Algorithm::Aes256Gcm, Algorithm::XChaCha20Poly1305];

#[test]
fn round_trip_with_both_algorithms_hides_the_plaintext_and_uses_fresh_nonces() {
    for algorithm in ALGORITHMS {
        let sealer = Sealer::new(algorithm, key(1));
        let b = binding(b"k1", &[]);
        let (mut a, mut c) = (Vec::new(), Vec::new());
        sealer.seal(&b, b"secret text", &mut a);
        sealer.seal(&b, b"secret text", &mut c);
        assert_eq!(a.len(), 11 + algorithm.overhead());
        assert_ne!(a, c, "{algorithm:?}: two seals of the same bytes differ (random nonces)");
        assert!(!a.windows(6).any(|w| w == b"secret"));
        assert_eq!(sealer.open(&b, &a).unwrap(), b"secret text");
        assert_eq!(header(&a).unwrap(), (algorithm, sealer.id()));
    }
}

#[test]
fn a_value_moved_to_another_record_fails() {
    let refs = [[3u8; 33]];
    let sealer = Sealer::new(Algorithm::Aes256Gcm, key(1));
    let original = binding(b"k1", &refs);
    let mut sealed = Vec::new();
    sealer.seal(&original, b"secret text", &mut sealed);
    let other_refs = [[4u8; 33]];
    let moved = [
        Binding { key: b"k2", ..original },
        Binding { kind: 2, ..original },
        Binding { record_type: RecordType::Blob, ..original },
        Binding { codec: SEALED_CODEC_BIT | 1, ..original },
        Binding { name: b"other", ..original },
        Binding { refs: &other_refs, ..original },
        Binding { refs: &[], ..original },
        Binding { raw_len: 12, ..original },
    ];
    for b in moved {
        assert_eq!(sealer.open(&b, &sealed), Err(OpenError::Forged), "{b:?}");
    }
}

#[test]
fn every_flipped_bit_and_every_cut_is_an_error_never_a_panic() {
    for algorithm in ALGORITHMS {
        let sealer = Sealer::new(algorithm, key(1));
        let b = binding(b"k1", &[]);
        let mut sealed = Vec::new();
        sealer.seal(&b, b"secret text", &mut sealed);
        for i in 0..sealed.len() {
            for bit in 0..8 {
                let mut damaged = sealed.clone();
                damaged[i] ^= 1 << bit;
                assert!(sealer.open(&b, &damaged).is_err(), "bit {bit} of byte {i} went unnoticed");
            }
        }
        for cut in 0..sealed.len() {
            assert!(sealer.open(&b, &sealed[..cut]).is_err());
        }
    }
}

#[test]
fn another_key_names_both_ids_and_a_read_key_opens() {
    let old = Sealer::new(Algorithm::XChaCha20Poly1305, key(1));
    let b = binding(b"k1", &[]);
    let mut sealed = Vec::new();
    old.seal(&b, b"secret text", &mut sealed);
    let new = Sealer::new(Algorithm::Aes256Gcm, key(2));
    let err = new.open(&b, &sealed).unwrap_err();
    assert_eq!(err, OpenError::WrongKey { written: key(1).id(), configured: Some(key(2).id()) });
    assert_eq!(
        err.to_string(),
        format!("written with key {}, the configured key is {}", key(1).id(), key(2).id())
    );
    assert!(open(None, &b, &sealed).unwrap_err().to_string().contains("the configured key is none"));
    let both = Sealer::new(Algorithm::Aes256Gcm, key(2)).with_read_key(key(1));
    assert_eq!(both.open(&b, &sealed).unwrap(), b"secret text", "a value sealed with XChaCha opens too");
    assert_eq!(both.id(), key(2).id());
    assert_ne!(key(1).dedup_key(), key(2).dedup_key());
    assert_eq!(key(1).id().to_string().len(), 16);
}

#[test]
fn the_sealed_layout_is_pinned() {
    // docs/format.md, "Sealed values": a change here is a format change.
    assert_eq!(key(1).id().to_string(), "88c7a56bb93cf316");
    let sealer = Sealer::new(Algorithm::XChaCha20Poly1305, key(1));
    let mut sealed = Vec::new();
    sealer.seal(&binding(b"k1", &[]), b"secret text", &mut sealed);
    assert_eq!(sealed[0], 2);
    assert_eq!(&sealed[1..9], &key(1).id().0);
    assert_eq!(sealed.len(), 1 + 8 + 24 + 11 + 16);
    let aad = binding(b"k1", &[]).aad(Algorithm::XChaCha20Poly1305, key(1).id());
    let mut want = b"inferno sealed value v1\0".to_vec();
    want.extend_from_slice(&[1, 1, 0x82, 2]);
    want.extend_from_slice(&key(1).id().0);
    want.extend_from_slice(&11u32.to_le_bytes());
    want.extend_from_slice(&[2, 0, 0, 0, b'k', b'1', 4, 0, 0, 0, b't', b'i', b'n', b'y', 0, 0, 0, 0]);
    assert_eq!(aad, want);
}
