//! `medclipseg serve`: the review page, the JSON API and the MONAI Label protocol over HTTP,
//! through [`medclipseg_server::Server`] with the checkpoint's model in one worker.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use medclipseg_model::McConfig;
use medclipseg_pipeline::{LoadedModel, Predictor};
use medclipseg_server::{Access, ServeConfig, Server};

use crate::backend;
use crate::store::Provenance;

/// `medclipseg serve` options.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Checkpoint of ours (config and vocabulary inside).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Address to listen on. Anything but a loopback address needs --token or --no-auth.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port (0 picks a free one).
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// Callers must send `Authorization: Bearer TOKEN` or `?token=TOKEN`.
    #[arg(long)]
    token: Option<String>,
    /// Serve a non-loopback address without a token (a trusted network only; logs a warning).
    #[arg(long, conflicts_with = "token")]
    no_auth: bool,
    /// The server's folder for uploads and results (default: a folder in the system's temp dir).
    #[arg(long)]
    datastore: Option<PathBuf>,
    /// Images kept in the datastore; the oldest is evicted past it.
    #[arg(long, default_value_t = 100)]
    datastore_limit: usize,
    /// Largest upload: bytes, or with K, M or G (a CT series is a few hundred MB).
    #[arg(long, default_value = "1G", value_parser = parse_size)]
    max_upload: usize,
    /// Jobs waiting behind the running one; more are answered 503 with Retry-After.
    #[arg(long, default_value_t = 32)]
    queue: usize,
    /// Default Monte-Carlo samples (a request may ask for another number up to --max-samples).
    #[arg(long, default_value_t = 30)]
    samples: usize,
    /// Most Monte-Carlo samples one request may ask for.
    #[arg(long, default_value_t = 200)]
    max_samples: usize,
    /// Default seed of the Monte-Carlo noise.
    #[arg(long, default_value_t = 666)]
    seed: u64,
    /// The prompt MONAI Label clients (3D Slicer) see as the model's default option.
    #[arg(long, default_value = "a lesion")]
    prompt: String,
    /// Seconds a request may take (uploads, a MONAI Label inference); progress streams are exempt.
    #[arg(long, default_value_t = 600)]
    request_timeout: u64,
    /// Device of the compiled-in backend.
    #[arg(long, default_value = "default")]
    device: String,
    /// Threshold every mask at a calibrated value (`medclipseg calibrate`, made with this
    /// checkpoint) instead of 0.5; a file with a second level adds the uncertain band map.
    #[arg(long)]
    calibration: Option<PathBuf>,
}

/// `K`, `M`, `G` (binary) suffixes.
fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let (digits, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, ""),
    };
    let n: usize = digits
        .parse()
        .map_err(|_| format!("`{text}`: a size such as 1G, 512M or 1048576"))?;
    let scale = match unit.to_ascii_uppercase().trim_end_matches('B') {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        other => return Err(format!("`{text}`: unknown unit `{other}` (K, M or G)")),
    };
    n.checked_mul(scale)
        .filter(|&s| s > 0)
        .ok_or_else(|| format!("`{text}`: out of range"))
}

/// Who may call: loopback is open, anything else needs a token or an explicit --no-auth.
fn access(host: &IpAddr, token: Option<String>, no_auth: bool) -> Result<Access> {
    match (token, no_auth) {
        (Some(t), _) if t.len() < 16 => {
            bail!(
                "--token is {} characters; use at least 16 (e.g. `openssl rand -hex 16`)",
                t.len()
            )
        }
        (Some(t), _) => Ok(Access::Token(t)),
        (None, _) if host.is_loopback() => Ok(Access::Open),
        (None, true) => {
            tracing::warn!(
                "serving {host} without a token (--no-auth): anyone who reaches it can upload \
                 images and run the model"
            );
            Ok(Access::Open)
        }
        (None, false) => bail!(
            "--host {host} is reachable from other machines: pass --token TOKEN (callers send \
             `Authorization: Bearer TOKEN` or `?token=TOKEN`), or --no-auth on a trusted network"
        ),
    }
}

/// Runs the server until Ctrl-C.
pub fn run(a: ServeArgs) -> Result<()> {
    let host: IpAddr = match a.host.as_str() {
        "localhost" => IpAddr::from([127, 0, 0, 1]),
        h => h
            .parse()
            .with_context(|| format!("--host {h}: an IP address such as 127.0.0.1 or 0.0.0.0"))?,
    };
    let access = access(&host, a.token.clone(), a.no_auth)?;
    if a.samples == 0 || a.samples > a.max_samples {
        bail!(
            "--samples {} must be between 1 and --max-samples {}",
            a.samples,
            a.max_samples
        );
    }
    let device = backend::device(&a.device)?;
    let provenance = Provenance::new().with_checkpoint(&a.checkpoint)?;
    let datastore = a
        .datastore
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("medclipseg-serve-{}", a.port)));
    let mut config = ServeConfig::new(&datastore);
    config.datastore_limit = a.datastore_limit;
    config.max_upload = a.max_upload;
    config.queue = a.queue;
    config.default_samples = a.samples;
    config.max_samples = a.max_samples;
    config.default_seed = a.seed;
    config.default_prompt = a.prompt.clone();
    config.request_timeout = Duration::from_secs(a.request_timeout);
    config.access = access.clone();
    config.provenance = serde_json::json!({
        "checkpoint": a.checkpoint.display().to_string(),
        "sha256": provenance.checkpoint.as_ref().map(|(_, sha)| sha.clone()),
        "backend": backend::name(),
        "tool": provenance.tool,
    });
    // A calibration for another checkpoint is refused before the model is read.
    if let Some(path) = &a.calibration {
        config = config.with_calibration(path, &a.checkpoint)?;
    }
    let loaded = LoadedModel::<backend::Inner>::load(&a.checkpoint, &device)?;
    let predictor = Predictor::new(loaded, &device)?
        .with_mc_config(McConfig::new().with_max_batch(backend::DEFAULT_MC_BATCH))
        .with_noise(backend::pipeline_noise_source());
    let mask_rule = match &config.calibration {
        Some(file) => format!(
            "Masks: probability >= {} ({})",
            seg_metrics::conformal::threshold_value(file.threshold),
            file.statement
        ),
        None => "Masks: probability > 0.5 (not calibrated; see --calibration)".into(),
    };
    let server = Server::start(config, predictor)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(SocketAddr::new(host, a.port))
            .await
            .with_context(|| format!("cannot listen on {host}:{}", a.port))?;
        let address = listener.local_addr()?;
        let shown = if host.is_unspecified() {
            SocketAddr::new(IpAddr::from([127, 0, 0, 1]), address.port())
        } else {
            address
        };
        let query = match &access {
            Access::Token(t) => format!("?token={t}"),
            Access::Open => String::new(),
        };
        println!(
            "MedCLIPSeg is serving {} (datastore {})",
            a.checkpoint.display(),
            datastore.display()
        );
        println!(
            "Open http://{shown}/{query} in a browser; MONAI Label / 3D Slicer: http://{shown}/"
        );
        println!("{mask_rule}");
        println!("Ctrl-C stops (the running job is cancelled at its next Monte-Carlo chunk).");
        server
            .serve(listener, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        println!("stopped");
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_units() {
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("64kb"), Ok(64 << 10));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("1T").is_err());
        assert!(parse_size("0").is_err());
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn only_loopback_is_open_without_a_token() {
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        assert_eq!(access(&local, None, false).unwrap(), Access::Open);
        let refused = access(&any, None, false).unwrap_err().to_string();
        assert!(
            refused.contains("--token") && refused.contains("--no-auth"),
            "{refused}"
        );
        assert_eq!(access(&any, None, true).unwrap(), Access::Open);
        let token = "0123456789abcdef".to_string();
        assert_eq!(
            access(&any, Some(token.clone()), false).unwrap(),
            Access::Token(token)
        );
        assert!(access(&any, Some("short".into()), false).is_err());
    }
}
