//! Trained zstd dictionaries as the manager keeps them: stored in the cache itself, loaded at open, trained
//! from the cache's own responses (by housekeeping when the rule below says so, or on demand by
//! `inferno cache train-dictionary`), and deleted only when a full compaction proved no record uses them.
//!
//! **Storage.** A dictionary is an entry of the internal kind code [`DICTIONARY_KIND`] (6) under the key
//! `zstd-dictionary-<id>`, never expiring: backups, checksums, `verify`, compaction and sealing cover it like
//! any entry, while `clear`, `--type` listings, eviction and age cleanup, which work on response, model and
//! metadata entries only, never see it. The newest one (highest sequence number) is current.
//!
//! **When training runs** (housekeeping, off the request path, with `cache.compression.dictionary` on and
//! zstd): the first dictionary once the cache holds `dictionary_samples` live response entries (counted when
//! the index holds that many entries of any kind, then again after every tenth as many response puts; after a
//! failed training, `dictionary_samples` puts later); then, every 10 × `dictionary_samples` response puts
//! (counted by the process since it opened the cache or trained last), a candidate is trained on the most
//! recent responses and replaces the current one only when it stores held-out recent responses in at most
//! 95% of the bytes the current one needs (the content drifted). `train-dictionary` trains at once and
//! replaces the current one unless the candidate is worse.
//!
//! **Samples** are what the dictionary will compress: the decoded heads and chunks of the most recent
//! response entries (up to 2 × `dictionary_samples` entries); every tenth is held out to measure the result.
//!
//! **Never deleting one in use.** A new dictionary becomes current under the rewrite gate held alone, so no
//! write still holds the previous one when it does. A full compaction (`cache compact`) runs under the
//! training lock, re-encodes every response record it copies under the current dictionary
//! (`reencode.rs`) and notes the dictionary of every record it copies; since a full pass copies every live
//! record, a dictionary that is neither current nor noted is used by nothing, and only then is it deleted.
//! A pass that met a record whose dictionary it could not tell deletes none.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use super::values::{PartError, decode_parts, entry_binding, read_part, write_part};
use super::{CacheError, Manager};
use crate::cache::clock::{Expiry, now_ms};
use crate::cache::codec::{Codec, CodecId, Dictionaries, Dictionary, dictionary};
use crate::cache::disk::{DiskStore, EntryWrite};
use crate::cache::kind::Kind;
use crate::cache::seal::Sealer;
use crate::config::CacheConfig;

/// The kind code of dictionary entries in disk records (docs/format.md).
pub const DICTIONARY_KIND: u8 = 6;
/// The name dictionary entries carry.
const DICTIONARY_NAME: &str = "zstd dictionary";
/// The largest dictionary trained.
pub const MAX_DICTIONARY_BYTES: usize = 64 << 10;
/// A retrain replaces the current dictionary only when the candidate needs at most this share of its bytes.
const RETRAIN_GAIN: f64 = 0.95;
/// One sample in this many is held out of training, to measure the result.
const HOLD_OUT_ONE_IN: usize = 10;

/// The key of the dictionary entry with this id.
fn dictionary_key(id: u32) -> String {
    format!("zstd-dictionary-{id}")
}

/// The dictionaries of one manager, shared with its housekeeping thread.
#[derive(Default)]
pub(super) struct DictionaryState {
    set: RwLock<Arc<Dictionaries>>,
    /// Response puts by this process.
    response_puts: AtomicU64,
    /// Response puts after which housekeeping next considers training.
    next_check: AtomicU64,
    /// One training (or full compaction, which may delete dictionaries) at a time.
    pub(super) training: Mutex<()>,
}

impl DictionaryState {
    /// The dictionaries now.
    pub(super) fn snapshot(&self) -> Arc<Dictionaries> {
        self.set.read().clone()
    }

    /// Counts a response put (for the training rule).
    pub(super) fn note_response_put(&self) {
        self.response_puts.fetch_add(1, Ordering::Relaxed);
    }

    fn replace(&self, set: Dictionaries) {
        *self.set.write() = Arc::new(set);
    }

    /// Loads the dictionaries stored in `disk` ([`load`]); with one, the first retrain check comes after
    /// 10 × `samples` response puts.
    pub(super) fn load(&self, disk: &DiskStore, sealer: Option<&Sealer>, level: u32, samples: u32) {
        let set = load(disk, sealer, level);
        if set.current().is_some() {
            self.next_check.store(10 * u64::from(samples), Ordering::Relaxed);
        }
        self.replace(set);
    }
}

/// Why training was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Trigger {
    /// `inferno cache train-dictionary`: adopt unless worse than the current one.
    Asked,
    /// Housekeeping's rule: adopt only a clear gain.
    Drift,
}

/// What a training did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    /// The new dictionary's id.
    pub id: u32,
    /// Its size in bytes.
    pub bytes: u64,
    /// Whether it became current (a candidate no better than the current one is dropped).
    pub adopted: bool,
    /// The dictionary current before, if any.
    pub previous_id: Option<u32>,
    /// Response entries read for samples.
    pub entries_sampled: u64,
    /// Samples (heads and chunks) trained on.
    pub samples: u64,
    /// Their bytes.
    pub sample_bytes: u64,
    /// Held-out samples measured.
    pub held_out: u64,
    /// Their raw bytes.
    pub held_out_raw_bytes: u64,
    /// What the cache stores for them without a dictionary (zstd at the configured level, and raw below
    /// `compression_threshold_kb`, as it would).
    pub held_out_without_dictionary: u64,
    /// What it stores with the new dictionary.
    pub held_out_with_dictionary: u64,
    /// What it stores with the previous dictionary, if any.
    pub held_out_with_previous: Option<u64>,
}

/// What training needs, from a manager or its housekeeper.
pub(super) struct Trainer<'a> {
    pub(super) config: &'a CacheConfig,
    pub(super) disk: &'a DiskStore,
    /// Opens sealed values (every key the cache knows).
    pub(super) reading: Option<&'a Sealer>,
    /// Seals new values (`None` when encryption is off).
    pub(super) writing: Option<&'a Sealer>,
    pub(super) codec: Codec,
    pub(super) state: &'a DictionaryState,
    pub(super) gate: &'a RwLock<()>,
}

impl Trainer<'_> {
    /// Housekeeping's step: trains when the rule in the module doc says so; `None` when it did not run.
    pub(super) fn maybe_train(&self) -> Option<Result<TrainReport, CacheError>> {
        if !self.config.compression.uses_dictionary() || self.disk.options().read_only {
            return None;
        }
        if self.state.training.is_locked() {
            // A training or a full compaction is running: the background thread does not wait for it (its
            // flushes would), it checks again at its next pass.
            return None;
        }
        let samples = u64::from(self.config.compression.dictionary_samples);
        let has_current = self.state.snapshot().current().is_some();
        if !has_current && self.disk.entry_count() < samples {
            // Cheap: fewer entries of any kind than the samples needed.
            return None;
        }
        let puts = self.state.response_puts.load(Ordering::Relaxed);
        if puts < self.state.next_check.load(Ordering::Relaxed) {
            return None;
        }
        if !has_current && self.response_entries() < samples {
            // Counted again after a tenth as many puts.
            self.state.next_check.store(puts + samples / 10, Ordering::Relaxed);
            return None;
        }
        let result = self.train(Trigger::Drift);
        let adopted = result.as_ref().is_ok_and(|r| r.adopted) || has_current;
        self.state.next_check.store(puts + if adopted { 10 * samples } else { samples }, Ordering::Relaxed);
        Some(result)
    }

    fn response_entries(&self) -> u64 {
        let now = now_ms();
        let entries = self.disk.entries();
        entries.iter().filter(|(k, _, s)| *k == Kind::Response.code() && s.expires.is_live(now)).count()
            as u64
    }

    /// Trains a dictionary on the most recent responses and adopts it per `trigger` (module doc).
    pub(super) fn train(&self, trigger: Trigger) -> Result<TrainReport, CacheError> {
        let _one = self.state.training.lock();
        let fail = |reason: String| CacheError::Dictionary { reason };
        if !self.codec.takes_dictionary() {
            return Err(fail(
                "dictionaries need zstd: set cache.compression.enabled = true and algorithm = \"zstd\""
                    .into(),
            ));
        }
        let wanted = 2 * self.config.compression.dictionary_samples as usize;
        let (entries_sampled, units) = self.samples(wanted);
        let (train_on, held_out): (Vec<_>, Vec<_>) =
            units.into_iter().enumerate().partition(|(i, _)| i % HOLD_OUT_ONE_IN != HOLD_OUT_ONE_IN - 1);
        let train_on: Vec<Vec<u8>> = train_on.into_iter().map(|(_, u)| u).collect();
        let held_out: Vec<Vec<u8>> = held_out.into_iter().map(|(_, u)| u).collect();
        let sample_bytes: usize = train_on.iter().map(Vec::len).sum();
        let max_bytes = (sample_bytes / 10).clamp(dictionary::MIN_DICTIONARY_BYTES, MAX_DICTIONARY_BYTES);
        let bytes = dictionary::train(&train_on, max_bytes).map_err(|e| {
            fail(format!("{e} ({entries_sampled} response entries read; store more responses and try again)"))
        })?;
        let candidate =
            Arc::new(Dictionary::load(&bytes, self.codec.level()).map_err(|e| fail(e.to_string()))?);
        let previous = self.state.snapshot().current().cloned();
        let measure = |dictionary: Option<&Dictionary>| -> u64 {
            let mut scratch = Vec::new();
            held_out
                .iter()
                .map(|raw| self.codec.encode_with(raw, &mut scratch, dictionary).1.len() as u64)
                .sum()
        };
        let with_new = measure(Some(&candidate));
        let with_previous = previous.as_deref().map(|p| measure(Some(p)));
        let adopted = match (with_previous, trigger) {
            (None, _) => true,
            (Some(old), Trigger::Asked) => with_new <= old,
            (Some(old), Trigger::Drift) => (with_new as f64) <= RETRAIN_GAIN * old as f64,
        };
        if adopted {
            self.store(&candidate)?;
        }
        let report = TrainReport {
            id: candidate.id(),
            bytes: bytes.len() as u64,
            adopted,
            previous_id: previous.map(|p| p.id()),
            entries_sampled,
            samples: train_on.len() as u64,
            sample_bytes: sample_bytes as u64,
            held_out: held_out.len() as u64,
            held_out_raw_bytes: held_out.iter().map(|u| u.len() as u64).sum(),
            held_out_without_dictionary: measure(None),
            held_out_with_dictionary: with_new,
            held_out_with_previous: with_previous,
        };
        tracing::info!(?report, "zstd dictionary trained");
        Ok(report)
    }

    /// Writes `dictionary` as an entry and makes it current, alone under the rewrite gate.
    fn store(&self, dictionary: &Arc<Dictionary>) -> Result<(), CacheError> {
        let key = dictionary_key(dictionary.id());
        let binding =
            entry_binding(DICTIONARY_KIND, &key, DICTIONARY_NAME, &[], 0, dictionary.bytes().len() as u32);
        let (codec, value) = write_part(&self.codec, None, self.writing, binding, dictionary.bytes());
        let _alone = self.gate.write();
        self.disk.put_entry(&EntryWrite {
            kind: DICTIONARY_KIND,
            key: key.as_bytes(),
            name: DICTIONARY_NAME,
            codec,
            value: &value,
            raw_len: dictionary.bytes().len() as u32,
            refs: &[],
            payload_len: 0,
            created_ms: now_ms(),
            expires: Expiry::NEVER,
        })?;
        self.disk.flush()?;
        self.state.replace(self.state.snapshot().with_current(dictionary.clone()));
        Ok(())
    }

    /// The decoded heads and chunks of the `wanted` most recent live response entries (each chunk once).
    fn samples(&self, wanted: usize) -> (u64, Vec<Vec<u8>>) {
        let now = now_ms();
        let mut entries: Vec<_> = self
            .disk
            .entries()
            .into_iter()
            .filter(|(k, _, s)| *k == Kind::Response.code() && s.expires.is_live(now))
            .collect();
        entries.sort_unstable_by_key(|(_, _, s)| std::cmp::Reverse(s.seq));
        entries.truncate(wanted);
        let dictionaries = self.state.snapshot();
        let mut seen = HashSet::new();
        let mut units = Vec::new();
        let mut read = 0;
        for (kind, key, _) in entries {
            let Ok(Some(stored)) = self.disk.get(kind, &key) else { continue };
            let key = String::from_utf8_lossy(&key);
            let Ok((head, chunks)) = decode_parts(self.reading, &dictionaries, kind, &key, &stored) else {
                continue;
            };
            read += 1;
            if !head.is_empty() {
                units.push(head);
            }
            for (chunk, blob) in chunks.into_iter().zip(&stored.refs) {
                if seen.insert(*blob) {
                    units.push(chunk);
                }
            }
        }
        (read, units)
    }
}

/// The dictionaries stored in `disk`, the newest current. One that cannot be read is left out (and logged):
/// values compressed with it read as misses and `verify` names them.
fn load(disk: &DiskStore, sealer: Option<&Sealer>, level: u32) -> Dictionaries {
    let mut found = Vec::new();
    for (kind, key, slot) in disk.entries().into_iter().filter(|(k, _, _)| *k == DICTIONARY_KIND) {
        let name = String::from_utf8_lossy(&key).into_owned();
        let loaded = match disk.get(kind, &key) {
            Ok(Some(stored)) => {
                let binding = entry_binding(kind, &name, &stored.name, &[], stored.codec, stored.raw_len);
                read_part(sealer, &Dictionaries::default(), binding, &stored.value)
                    .map_err(|e| part_reason(&e))
                    .and_then(|bytes| Dictionary::load(&bytes, level).map_err(|e| e.to_string()))
                    .and_then(|d| match dictionary_key(d.id()) == name {
                        true => Ok(d),
                        false => Err(format!("it holds dictionary {}", d.id())),
                    })
            }
            Ok(None) => Err("its record is missing".into()),
            Err(e) => Err(e.to_string()),
        };
        match loaded {
            Ok(dictionary) => found.push((slot.seq, Arc::new(dictionary))),
            Err(reason) => tracing::warn!(
                key = name,
                "cannot load a zstd dictionary ({reason}); values compressed with it read as misses"
            ),
        }
    }
    let current = found.iter().max_by_key(|(seq, _)| *seq).map(|(_, d)| d.id());
    Dictionaries::new(found.into_iter().map(|(_, d)| d), current)
}

/// A part error as text.
pub(super) fn part_reason(error: &PartError) -> String {
    match error {
        PartError::Sealed(why) => why.to_string(),
        PartError::Codec(e) => e.to_string(),
    }
}

/// The dictionaries as `cache stats` shows them, with the compression ratio measured on the same values with
/// and without the dictionary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DictionaryReport {
    /// Dictionaries stored.
    pub dictionaries: u64,
    /// The current one's id.
    pub current_id: Option<u32>,
    /// Bytes of all stored dictionaries.
    pub dictionary_bytes: u64,
    /// Dictionary-coded heads and chunks measured (all of them, or an even spread of up to
    /// [`MEASURED_VALUES`]).
    pub measured_values: u64,
    /// Their decoded bytes.
    pub raw_bytes: u64,
    /// Their stored bytes, with the dictionary.
    pub stored_bytes: u64,
    /// The bytes the cache would store for the same values without a dictionary: each compressed now with
    /// zstd at the configured level, raw below `compression_threshold_kb` or when not smaller.
    pub without_dictionary_bytes: u64,
    /// `raw_bytes / stored_bytes`.
    pub ratio_with_dictionary: Option<f64>,
    /// `raw_bytes / without_dictionary_bytes`.
    pub ratio_without_dictionary: Option<f64>,
}

/// The most dictionary-coded values `cache stats` decodes and compresses again to measure the ratio without.
pub const MEASURED_VALUES: usize = 1000;

impl Manager {
    pub(super) fn trainer(&self) -> Option<Trainer<'_>> {
        Some(Trainer {
            config: &self.config,
            disk: self.disk.as_deref()?,
            reading: self.sealer.as_deref(),
            writing: self.writing().sealer,
            codec: self.codec,
            state: &self.dictionaries,
            gate: &self.rewrite_gate,
        })
    }

    /// The dictionaries this cache holds now (the current one among them).
    pub fn dictionaries(&self) -> Arc<Dictionaries> {
        self.dictionaries.snapshot()
    }

    /// Trains a zstd dictionary on the cache's responses now and makes it current unless it is worse than the
    /// current one (`inferno cache train-dictionary`).
    pub fn train_dictionary(&self) -> Result<TrainReport, CacheError> {
        let trainer = self.trainer().ok_or(CacheError::NoDiskTier { operation: "train a dictionary for" })?;
        if self.disk.as_ref().is_some_and(|d| d.options().read_only) {
            return Err(CacheError::Dictionary { reason: "the cache was opened read-only".into() });
        }
        trainer.train(Trigger::Asked)
    }

    /// The stored dictionaries and the compression ratio with and without them; `None` when there are none.
    pub fn dictionary_report(&self) -> Option<DictionaryReport> {
        let disk = self.disk.as_deref()?;
        let set = self.dictionaries.snapshot();
        if set.is_empty() {
            return None;
        }
        let mut report = DictionaryReport {
            dictionaries: set.len() as u64,
            current_id: set.current().map(|d| d.id()),
            dictionary_bytes: set.all().map(|d| d.bytes().len() as u64).sum(),
            measured_values: 0,
            raw_bytes: 0,
            stored_bytes: 0,
            without_dictionary_bytes: 0,
            ratio_with_dictionary: None,
            ratio_without_dictionary: None,
        };
        let kind = Kind::Response.code();
        let mut scratch = Vec::new();
        for key in disk.sample_keys(kind, MEASURED_VALUES) {
            let Ok(Some(stored)) = disk.get(kind, &key) else { continue };
            let key = String::from_utf8_lossy(&key);
            let Ok((head, chunks)) = decode_parts(self.sealer.as_deref(), &set, kind, &key, &stored) else {
                continue;
            };
            let parts = std::iter::once((stored.codec, stored.value.len(), head))
                .chain(stored.chunks.iter().zip(chunks).map(|(c, raw)| (c.codec, c.bytes.len(), raw)));
            for (codec, stored_len, raw) in parts {
                if crate::cache::seal::inner_codec(codec) != CodecId::ZstdDict as u8 {
                    continue;
                }
                report.measured_values += 1;
                report.raw_bytes += raw.len() as u64;
                report.stored_bytes += stored_len as u64;
                report.without_dictionary_bytes += self.codec.encode(&raw, &mut scratch).1.len() as u64;
            }
        }
        let ratio = |den: u64| (den > 0).then(|| report.raw_bytes as f64 / den as f64);
        report.ratio_with_dictionary = ratio(report.stored_bytes);
        report.ratio_without_dictionary = ratio(report.without_dictionary_bytes);
        Some(report)
    }

    /// Entries whose checksum holds (not in `report`) but that need a dictionary this cache does not hold or
    /// cannot read, and dictionary entries that cannot be loaded: kind, key, location, why.
    pub(super) fn entries_without_dictionary(
        &self,
        disk: &DiskStore,
        report: &crate::cache::disk::VerifyReport,
    ) -> Vec<(u8, Vec<u8>, crate::cache::disk::Loc, String)> {
        let set = self.dictionaries.snapshot();
        let damaged: HashSet<(u8, &str)> = report.damaged.iter().map(|d| (d.kind, d.key.as_str())).collect();
        let mut out = Vec::new();
        for (kind, key, slot) in disk.entries() {
            let text = String::from_utf8_lossy(&key).into_owned();
            if damaged.contains(&(kind, text.as_str())) {
                continue;
            }
            if kind == DICTIONARY_KIND {
                if !set.all().any(|d| dictionary_key(d.id()) == text) {
                    out.push((kind, key, slot.loc, "this zstd dictionary cannot be loaded".to_string()));
                }
                continue;
            }
            let Ok(Some(stored)) = disk.get(kind, &key) else { continue };
            let dictionary_coded = std::iter::once(stored.codec)
                .chain(stored.chunks.iter().map(|c| c.codec))
                .any(|c| crate::cache::seal::inner_codec(c) == CodecId::ZstdDict as u8);
            if !dictionary_coded {
                continue;
            }
            if let Err(PartError::Codec(error)) =
                decode_parts(self.sealer.as_deref(), &set, kind, &text, &stored)
            {
                out.push((kind, key, slot.loc, format!("{error}; the value is never served")));
            }
        }
        out
    }

    /// Re-seals every dictionary entry not sealed with `target` under it, oldest first so the newest stays
    /// current (a rekey's first step: values compressed with them must stay readable under the new key).
    pub(super) fn reseal_dictionaries(&self, target: &Sealer) -> Result<u64, CacheError> {
        let Some(disk) = self.disk.as_deref() else { return Ok(0) };
        let mut entries: Vec<_> =
            disk.entries().into_iter().filter(|(k, _, _)| *k == DICTIONARY_KIND).collect();
        entries.sort_unstable_by_key(|(_, _, slot)| slot.seq);
        let mut resealed = 0;
        for (kind, key, _) in entries {
            let _alone = self.rewrite_gate.write();
            let Some(stored) = disk.get(kind, &key)? else { continue };
            let sealed_with_target = crate::cache::seal::is_sealed(stored.codec)
                && crate::cache::seal::header(&stored.value).is_ok_and(|(_, id)| id == target.id());
            if sealed_with_target {
                continue;
            }
            let name = String::from_utf8_lossy(&key).into_owned();
            let binding = entry_binding(kind, &name, &stored.name, &[], stored.codec, stored.raw_len);
            let raw =
                read_part(Some(target), &Dictionaries::default(), binding, &stored.value).map_err(|e| {
                    CacheError::Dictionary {
                        reason: format!("dictionary {name} cannot be read: {}", part_reason(&e)),
                    }
                })?;
            let (codec, value) = write_part(&self.codec, None, Some(target), binding, &raw);
            disk.put_entry(&EntryWrite {
                kind,
                key: &key,
                name: &stored.name,
                codec,
                value: &value,
                raw_len: stored.raw_len,
                refs: &[],
                payload_len: 0,
                created_ms: stored.created_ms,
                expires: stored.expires,
            })?;
            resealed += 1;
        }
        Ok(resealed)
    }

    /// Deletes the dictionaries `unused` names (never the current one); see the module doc for why they are
    /// unused.
    pub(super) fn delete_dictionaries(&self, unused: &[u32]) -> Result<(), CacheError> {
        let Some(disk) = self.disk.as_deref() else { return Ok(()) };
        let set = self.dictionaries.snapshot();
        let current = set.current().map(|d| d.id());
        for &id in unused.iter().filter(|id| Some(**id) != current) {
            disk.remove(DICTIONARY_KIND, dictionary_key(id).as_bytes())?;
            tracing::info!(id, "deleted a zstd dictionary no record uses any more");
        }
        self.dictionaries.replace(set.without(unused));
        Ok(())
    }
}
