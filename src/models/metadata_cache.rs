//! The metadata cache: [`ModelMetadata`] records kept in the cache engine (kind `metadata`), so "what is
//! this model" is answered without reading or hashing the file again.
//!
//! An entry's key is the model's canonical path and its name is the file name (what `--pattern` matches).
//! Its life is `cache.metadata.ttl_hours`. With `cache.metadata.auto_refresh`, a lookup compares the file's
//! current [`FileStamp`](super::file::FileStamp) (size, mtime, inode) with the one the record was read for
//! and re-reads on any difference; without it, the record is served until it expires. Measured performance
//! figures survive a re-read as long as the fingerprint (the content) is unchanged.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::file::ModelFile;
use super::metadata::{MetadataError, ModelMetadata, PerformanceStats};
use crate::cache::{Kind, Manager};

/// Where a lookup's answer came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// A fresh cached record.
    Cache,
    /// Not cached (or the cache is off): read from the file.
    Read,
    /// Cached, but the file changed since: read again.
    Refreshed,
}

/// A lookup's answer.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Lookup {
    /// The record.
    pub metadata: ModelMetadata,
    /// Where it came from.
    pub source: Source,
}

/// What `refresh_all` did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RefreshReport {
    /// Records read again whose file had not changed.
    pub unchanged: u64,
    /// Records read again whose file had changed (new stamp; rehashed).
    pub changed: u64,
    /// Records removed because their file is gone.
    pub removed: Vec<PathBuf>,
    /// Records that could not be refreshed, with the reason; their old record is removed.
    pub failed: Vec<(PathBuf, String)>,
}

/// The metadata cache over an open cache [`Manager`].
pub struct MetadataCache<'a> {
    manager: &'a Manager,
}

impl<'a> MetadataCache<'a> {
    /// The metadata cache stored in `manager`, configured by its `[cache.metadata]`.
    pub fn new(manager: &'a Manager) -> Self {
        Self { manager }
    }

    /// The metadata of the model file at `path`: cached when fresh, else read (and stored).
    pub fn get(&self, path: &Path) -> Result<Lookup, MetadataError> {
        let file = ModelFile::open(path)?;
        let cached = self.cached(&file.path)?;
        match cached {
            Some(old) if !self.manager.config().metadata.auto_refresh || old.stamp == file.stamp => {
                Ok(Lookup { metadata: old, source: Source::Cache })
            }
            Some(old) => {
                let fingerprint = file.fingerprint()?;
                let metadata = self.store_read(&file, fingerprint, Some(old))?;
                Ok(Lookup { metadata, source: Source::Refreshed })
            }
            None => {
                let fingerprint = file.fingerprint()?;
                let metadata = self.store_read(&file, fingerprint, None)?;
                Ok(Lookup { metadata, source: Source::Read })
            }
        }
    }

    /// Stores the metadata of `file` whose `fingerprint` the caller just computed (warming hashes the file
    /// while reading it), keeping measured figures when the content is unchanged.
    pub fn put_read(&self, file: &ModelFile, fingerprint: String) -> Result<ModelMetadata, MetadataError> {
        let old = self.cached(&file.path)?;
        self.store_read(file, fingerprint, old)
    }

    /// Adds measured load time and speed to the record of the model at `path` (when
    /// `cache.metadata.include_performance_stats` is on; otherwise nothing is stored).
    pub fn record_performance(&self, path: &Path, stats: PerformanceStats) -> Result<(), MetadataError> {
        if !self.manager.config().metadata.include_performance_stats {
            return Ok(());
        }
        let mut lookup = self.get(path)?;
        lookup.metadata.performance = Some(stats);
        self.store(&lookup.metadata)
    }

    /// Every cached record (fresh or not), oldest first.
    pub fn all(&self) -> Result<Vec<ModelMetadata>, MetadataError> {
        let mut out = Vec::new();
        for entry in self.manager.entries(Some(Kind::Metadata)) {
            if let Some(meta) = self.cached(Path::new(&entry.key))? {
                out.push(meta);
            }
        }
        Ok(out)
    }

    /// Reads every cached record's file again (`inferno cache refresh --type metadata`): headers are always
    /// re-read, files are rehashed only when their stamp changed, records of vanished or unreadable files
    /// are removed.
    pub fn refresh_all(&self) -> Result<RefreshReport, MetadataError> {
        let mut report = RefreshReport::default();
        for entry in self.manager.entries(Some(Kind::Metadata)) {
            let path = PathBuf::from(&entry.key);
            let old = self.cached(&path)?;
            let outcome = ModelFile::open(&path).and_then(|file| {
                let unchanged = old.as_ref().filter(|o| o.stamp == file.stamp);
                let fingerprint = match unchanged {
                    Some(o) => o.fingerprint.clone(),
                    None => file.fingerprint()?,
                };
                Ok((file, fingerprint, unchanged.is_some()))
            });
            match outcome {
                Err(super::file::ModelFileError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    self.manager.remove(Kind::Metadata, &entry.key)?;
                    report.removed.push(path);
                }
                Err(e) => {
                    self.manager.remove(Kind::Metadata, &entry.key)?;
                    report.failed.push((path, e.to_string()));
                }
                Ok((file, fingerprint, unchanged)) => match self.store_read(&file, fingerprint, old) {
                    Ok(_) if unchanged => report.unchanged += 1,
                    Ok(_) => report.changed += 1,
                    Err(e) => {
                        self.manager.remove(Kind::Metadata, &entry.key)?;
                        report.failed.push((path, e.to_string()));
                    }
                },
            }
        }
        Ok(report)
    }

    fn store_read(
        &self,
        file: &ModelFile,
        fingerprint: String,
        old: Option<ModelMetadata>,
    ) -> Result<ModelMetadata, MetadataError> {
        let mut metadata = ModelMetadata::read(file, fingerprint)?;
        if let Some(old) = old.filter(|o| o.fingerprint == metadata.fingerprint) {
            metadata.performance = old.performance;
        }
        self.store(&metadata)?;
        Ok(metadata)
    }

    fn store(&self, metadata: &ModelMetadata) -> Result<(), MetadataError> {
        let key = metadata.path.to_string_lossy();
        let name = metadata.path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
        let value = serde_json::to_vec(metadata).expect("metadata serialises");
        self.manager.put(Kind::Metadata, &key, &name, &value, None)?;
        Ok(())
    }

    /// The cached record for a canonical path; an unreadable record (another version's) is a miss.
    fn cached(&self, canonical: &Path) -> Result<Option<ModelMetadata>, MetadataError> {
        if !self.manager.is_enabled(Kind::Metadata) {
            return Ok(None);
        }
        let bytes = self.manager.get(Kind::Metadata, &canonical.to_string_lossy())?;
        Ok(bytes.and_then(|b| serde_json::from_slice(&b).ok()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Access;
    use crate::config::CacheConfig;
    use crate::models::gguf::tiny::write_tiny_llama;

    fn open(dir: &Path, auto_refresh: bool) -> Manager {
        let mut config = CacheConfig { base_dir: dir.join("cache"), ..CacheConfig::default() };
        config.metadata.auto_refresh = auto_refresh;
        Manager::open(&config, Access::ReadWrite).unwrap()
    }

    fn stats() -> PerformanceStats {
        PerformanceStats { load_ms: 1.5, tokens_per_second: Some(900.0), measured_at_ms: 1 }
    }

    #[test]
    fn second_lookup_is_served_from_the_cache_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("tiny.gguf");
        write_tiny_llama(&model).unwrap();
        {
            let manager = open(dir.path(), true);
            let cache = MetadataCache::new(&manager);
            assert_eq!(cache.get(&model).unwrap().source, Source::Read);
            let again = cache.get(&dir.path().join("./tiny.gguf")).unwrap();
            assert_eq!(again.source, Source::Cache, "another spelling of the path is the same entry");
            cache.record_performance(&model, stats()).unwrap();
            manager.flush().unwrap();
        }
        let manager = open(dir.path(), true);
        let lookup = MetadataCache::new(&manager).get(&model).unwrap();
        assert_eq!(lookup.source, Source::Cache);
        assert_eq!(lookup.metadata.performance, Some(stats()));
        assert_eq!(MetadataCache::new(&manager).all().unwrap().len(), 1);
    }

    #[test]
    fn a_changed_file_is_reread_with_auto_refresh_and_not_without() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("m.gguf");
        write_tiny_llama(&model).unwrap();
        let manager = open(dir.path(), true);
        let cache = MetadataCache::new(&manager);
        let first = cache.get(&model).unwrap().metadata;
        cache.record_performance(&model, stats()).unwrap();
        // Same content, new mtime: re-read, same fingerprint, measured figures kept.
        let file = std::fs::File::options().write(true).open(&model).unwrap();
        file.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5)).unwrap();
        let touched = cache.get(&model).unwrap();
        assert_eq!(touched.source, Source::Refreshed);
        assert_eq!(touched.metadata.fingerprint, first.fingerprint);
        assert_eq!(touched.metadata.performance, Some(stats()));
        // New content: new fingerprint, figures dropped.
        let mut bytes = std::fs::read(&model).unwrap();
        *bytes.last_mut().unwrap() ^= 0x55;
        std::fs::write(&model, &bytes).unwrap();
        let changed = cache.get(&model).unwrap();
        assert_eq!(changed.source, Source::Refreshed);
        assert_ne!(changed.metadata.fingerprint, first.fingerprint);
        assert_eq!(changed.metadata.performance, None);
        drop(manager);

        let manager = open(dir.path(), false);
        let cache = MetadataCache::new(&manager);
        std::fs::write(&model, &bytes[..bytes.len() - 1]).unwrap();
        let stale = cache.get(&model).unwrap();
        assert_eq!(stale.source, Source::Cache, "auto_refresh off serves the record until it expires");
        assert_eq!(stale.metadata.fingerprint, changed.metadata.fingerprint);
    }

    #[test]
    fn refresh_all_rereads_removes_and_reports() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (dir.path().join("a.gguf"), dir.path().join("b.gguf"), dir.path().join("c.gguf"));
        for p in [&a, &b, &c] {
            write_tiny_llama(p).unwrap();
        }
        let manager = open(dir.path(), false);
        let cache = MetadataCache::new(&manager);
        for p in [&a, &b, &c] {
            cache.get(p).unwrap();
        }
        std::fs::remove_file(&b).unwrap();
        let bytes = std::fs::read(&c).unwrap();
        std::fs::write(&c, &bytes[..bytes.len() / 2]).unwrap();
        let report = cache.refresh_all().unwrap();
        assert_eq!(report.unchanged, 1);
        assert_eq!(report.changed, 0);
        assert!(report.removed.len() == 1 && report.removed[0].ends_with("b.gguf"), "{:?}", report.removed);
        assert_eq!(report.failed.len(), 1);
        assert!(report.failed[0].1.contains("c.gguf"), "{:?}", report.failed);
        assert_eq!(cache.all().unwrap().len(), 1, "only a.gguf is left");
    }

    #[test]
    fn disabled_metadata_cache_reads_every_time_and_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("tiny.gguf");
        write_tiny_llama(&model).unwrap();
        let mut config = CacheConfig { base_dir: dir.path().join("cache"), ..CacheConfig::default() };
        config.metadata.enabled = false;
        let manager = Manager::open(&config, Access::ReadWrite).unwrap();
        let cache = MetadataCache::new(&manager);
        assert_eq!(cache.get(&model).unwrap().source, Source::Read);
        assert_eq!(cache.get(&model).unwrap().source, Source::Read);
        assert!(cache.all().unwrap().is_empty());
    }
}
