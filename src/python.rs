//! Runs the Python trainers in `trainer/` as subprocesses, with the project's virtualenv
//! (`scripts/trainer-env.sh` makes it). Their progress goes to our stderr as it happens.

use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum TrainerError {
    #[error("no Python for the trainer at {path}: run `bash scripts/trainer-env.sh` (or set STREAMREC_PYTHON)")]
    NoPython { path: PathBuf },
    #[error("trainer script {path} not found: run from the repository root or set STREAMREC_TRAINER_DIR")]
    NoScript { path: PathBuf },
    #[error("starting {program}: {source}")]
    Spawn { program: String, source: std::io::Error },
    #[error("{script} failed ({status}); its messages are above")]
    Failed { script: String, status: String },
}

/// The trainer's Python: `STREAMREC_PYTHON`, else the venv `scripts/trainer-env.sh` creates.
pub fn python() -> Result<PathBuf, TrainerError> {
    let path = match std::env::var_os("STREAMREC_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => {
            let venv = std::env::var_os("STREAMREC_VENV")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/streamrec/venv")))
                .unwrap_or_else(|| PathBuf::from(".venv"));
            venv.join("bin/python")
        }
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(TrainerError::NoPython { path })
    }
}

/// A script in the trainer directory: `STREAMREC_TRAINER_DIR`, else `./trainer`, else the source tree's.
pub fn script(name: &str) -> Result<PathBuf, TrainerError> {
    let dirs = [
        std::env::var_os("STREAMREC_TRAINER_DIR").map(PathBuf::from),
        Some(PathBuf::from("trainer")),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("trainer")),
    ];
    let first = dirs.iter().flatten().next().cloned().unwrap_or_default().join(name);
    dirs.into_iter().flatten().map(|d| d.join(name)).find(|p| p.is_file()).ok_or(TrainerError::NoScript { path: first })
}

/// Runs `python script args…`, inheriting stdout and stderr.
pub fn run(script_name: &str, args: &[String]) -> Result<(), TrainerError> {
    let py = python()?;
    let path = script(script_name)?;
    let status = Command::new(&py)
        .arg(&path)
        .args(args)
        .status()
        .map_err(|source| TrainerError::Spawn { program: py.display().to_string(), source })?;
    if status.success() {
        Ok(())
    } else {
        Err(TrainerError::Failed { script: script_name.to_string(), status: status.to_string() })
    }
}

/// Runs `python script args…` and returns its stdout (stderr is inherited: its progress shows as it happens).
pub fn output(script_name: &str, args: &[String]) -> Result<String, TrainerError> {
    let py = python()?;
    let path = script(script_name)?;
    let out = Command::new(&py)
        .arg(&path)
        .args(args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|source| TrainerError::Spawn { program: py.display().to_string(), source })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(TrainerError::Failed { script: script_name.to_string(), status: out.status.to_string() })
    }
}
