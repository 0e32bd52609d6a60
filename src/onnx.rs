//! ONNX Runtime through `ort`, loaded at run time from the `libonnxruntime` the project's scripts install
//! (`ORT_DYLIB_PATH`, else the one inside the trainer's virtualenv): one environment per process, and sessions with
//! a given intra-op thread count. The two-tower models and the text encoder both run here.

use ort::session::Session;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

#[derive(Debug, Clone, thiserror::Error)]
pub enum OnnxError {
    #[error(
        "ONNX Runtime library not found ({0}): run `source scripts/trainer-env.sh` (installs PyPI onnxruntime and \
         exports ORT_DYLIB_PATH) or point ORT_DYLIB_PATH at libonnxruntime.so"
    )]
    NoRuntime(String),
    #[error("loading ONNX Runtime from {path}: {message}")]
    Runtime { path: String, message: String },
    #[error("reading {path}: {message}")]
    Read { path: PathBuf, message: String },
}

/// Where `libonnxruntime` is: `ORT_DYLIB_PATH`, else inside the trainer's virtualenv.
pub fn runtime_path() -> Result<PathBuf, OnnxError> {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        let p = PathBuf::from(p);
        return if p.is_file() { Ok(p) } else { Err(OnnxError::NoRuntime(format!("ORT_DYLIB_PATH={} is not a file", p.display()))) };
    }
    let venv = std::env::var_os("STREAMREC_VENV")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/streamrec/venv")))
        .ok_or_else(|| OnnxError::NoRuntime("no ORT_DYLIB_PATH and no HOME".into()))?;
    let lib = venv.join("lib");
    let found = std::fs::read_dir(&lib).ok().into_iter().flatten().flatten().find_map(|py| {
        let capi = py.path().join("site-packages/onnxruntime/capi");
        let mut libs: Vec<PathBuf> = std::fs::read_dir(capi)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("libonnxruntime.so")))
            .collect();
        libs.sort();
        libs.pop()
    });
    found.ok_or_else(|| OnnxError::NoRuntime(format!("ORT_DYLIB_PATH is unset and {} holds no onnxruntime", lib.display())))
}

/// The process's ONNX Runtime environment (loaded once).
fn environment() -> Result<&'static ort::environment::Environment, OnnxError> {
    static ENV: OnceLock<Result<ort::environment::Environment, OnnxError>> = OnceLock::new();
    let env = ENV.get_or_init(|| {
        let path = runtime_path()?;
        let shown = path.display().to_string();
        let builder = ort::init_from(&path).map_err(|e| OnnxError::Runtime { path: shown.clone(), message: e.to_string() })?;
        builder.with_name("streamrec").build().map_err(|e| OnnxError::Runtime { path: shown, message: e.to_string() })
    });
    env.as_ref().map_err(Clone::clone)
}

/// A model output that must be `n` rows of `dim` finite floats (what the towers and the text encoder return),
/// copied out; the error says which check failed.
pub fn take_rows(v: &ort::value::DynValue, n: usize, dim: usize) -> Result<Vec<f32>, String> {
    let (shape, data) = v.try_extract_tensor::<f32>().map_err(|e| e.to_string())?;
    let want = [n as i64, dim as i64];
    if shape[..] != want[..] {
        return Err(format!("output shape {shape:?}, expected {want:?}"));
    }
    if data.iter().any(|x| !x.is_finite()) {
        return Err("non-finite output".into());
    }
    Ok(data.to_vec())
}

/// A session on the model file at `path` with `threads` intra-op threads (at least 1).
pub fn session(path: &Path, threads: usize) -> Result<Session, OnnxError> {
    let read = |e: ort::Error| OnnxError::Read { path: path.to_path_buf(), message: e.to_string() };
    let env = environment()?;
    let builder = Session::builder(env).map_err(read)?;
    let mut builder = builder.with_intra_threads(threads.max(1)).map_err(|e| read(e.into()))?;
    builder.commit_from_file(path).map_err(read)
}
