//! The page in a real browser: headless Chromium driven over WebDriver (chromedriver). Open the
//! page, upload a scan, type two prompts, run, wait, and check that the overlay shows a non-empty
//! mask and that the uncertainty map is drawn; a screenshot is written (into docs/ with
//! `MEDCLIPSEG_UPDATE_SCREENSHOT=1`). `.ci/run` installs Debian's chromium and chromium-driver;
//! elsewhere the test skips with a message when they are absent.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::{PROMPT, Running};
use serde_json::{Value, json};

fn tool(env: &str, candidates: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env) {
        return Some(path.into());
    }
    candidates.iter().map(PathBuf::from).find(|p| p.exists())
}

/// chromedriver on a free port, killed on drop.
struct Driver {
    child: Child,
    base: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A WebDriver session.
struct Session {
    http: reqwest::Client,
    url: String,
}

impl Session {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let reply: Value = request.send().await.unwrap().json().await.unwrap();
        assert!(reply["value"].get("error").is_none(), "{path}: {reply}");
        reply["value"].clone()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn script(&self, script: &str) -> Value {
        self.post("/execute/sync", json!({ "script": script, "args": [] }))
            .await
    }

    async fn element(&self, css: &str) -> String {
        let found = self
            .post("/element", json!({ "using": "css selector", "value": css }))
            .await;
        found
            .as_object()
            .unwrap()
            .values()
            .next()
            .unwrap()
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.post(&format!("/element/{id}/value"), json!({ "text": text }))
            .await;
    }

    async fn click(&self, css: &str) {
        let id = self.element(css).await;
        self.post(&format!("/element/{id}/click"), json!({})).await;
    }

    /// Polls `script` (returning a value or null) until it gives non-null.
    async fn wait_for(&self, script: &str, limit: Duration) -> Value {
        let start = Instant::now();
        loop {
            let value = self.script(script).await;
            if !value.is_null() {
                return value;
            }
            assert!(start.elapsed() < limit, "timed out waiting for: {script}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A 192 x 144 scan with a bright disc.
fn write_scan(path: &Path) {
    let img = image::RgbImage::from_fn(192, 144, |x, y| {
        let d = ((x as f32 - 100.0).powi(2) + (y as f32 - 70.0).powi(2)).sqrt();
        let v = if d < 30.0 {
            220 - (d as u8)
        } else {
            40 + ((x + y) % 40) as u8
        };
        image::Rgb([v, v, v])
    });
    img.save(path).unwrap();
}

/// Non-transparent overlay pixels of each result panel, once every panel shows `map`.
fn overlay_probe(map: &str, panels: usize) -> String {
    format!(
        "const p = [...document.querySelectorAll('.panel')];
         if (p.length < {panels} || p.some(x => x.dataset.overlay !== '{map}')) return null;
         return p.map(x => Number(x.dataset.overlayPixels));"
    )
}

/// chromedriver and a headless Chromium session on a fresh profile under `dir`; `None` (with a
/// message) where they are not installed.
async fn open_browser(dir: &Path) -> Option<(Driver, Session)> {
    let chromium = tool(
        "CHROME_BIN",
        &["/usr/bin/chromium", "/usr/bin/chromium-browser"],
    );
    let driver_bin = tool("CHROMEDRIVER", &["/usr/bin/chromedriver"]);
    let (Some(chromium), Some(driver_bin)) = (chromium, driver_bin) else {
        eprintln!(
            "SKIPPED: chromium and chromedriver not found (apt-get install chromium chromium-driver; .ci/run does)"
        );
        assert!(
            std::env::var_os("MEDCLIPSEG_REQUIRE_BROWSER").is_none(),
            "MEDCLIPSEG_REQUIRE_BROWSER is set but chromium/chromedriver are missing"
        );
        return None;
    };
    let port = free_port();
    let child = Command::new(&driver_bin)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let driver = Driver {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let start = Instant::now();
    while http
        .get(format!("{}/status", driver.base))
        .send()
        .await
        .is_err()
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "chromedriver did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let profile = dir.join("profile");
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,860",
    ]
    .iter()
    .map(|a| a.to_string())
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect::<Vec<_>>();
    let caps = json!({ "capabilities": { "alwaysMatch": {
        "browserName": "chrome",
        "goog:chromeOptions": { "binary": chromium, "args": args }
    }}});
    let created: Value = http
        .post(format!("{}/session", driver.base))
        .json(&caps)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["value"]["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("no session: {created}"));
    let session = Session {
        http: http.clone(),
        url: format!("{}/session/{id}", driver.base),
    };
    Some((driver, session))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_page_runs_two_prompts_and_draws_mask_and_uncertainty() {
    let dir = tempfile::tempdir().unwrap();
    let Some((driver, session)) = open_browser(dir.path()).await else {
        return;
    };
    let server = Running::start_micro(dir.path()).await;
    let scan = dir.path().join("scan.png");
    write_scan(&scan);

    session
        .post("/url", json!({ "url": format!("{}/", server.base) }))
        .await;
    session.wait_for("return document.getElementById('model-info').textContent.includes('medclipseg') ? true : null", Duration::from_secs(20)).await;
    session
        .type_into("#file", &scan.display().to_string())
        .await;
    session
        .wait_for(
            "return document.getElementById('run').disabled ? null : true",
            Duration::from_secs(30),
        )
        .await;
    session.type_into(".prompt", PROMPT).await;
    session.click("#add-prompt").await;
    session
        .type_into(
            ".prompt-row:nth-child(2) .prompt",
            "a dark spot on the left",
        )
        .await;
    session
        .script("const s = document.getElementById('samples'); s.value = '4'; return true;")
        .await;
    session.click("#run").await;

    // The mask overlay of both prompts: some pixels drawn in the mask colour.
    let masks = session
        .wait_for(&overlay_probe("mask", 2), Duration::from_secs(120))
        .await;
    let masks: Vec<u64> = serde_json::from_value(masks).unwrap();
    assert!(
        masks.iter().all(|&m| m > 0),
        "an empty mask overlay: {masks:?}"
    );
    let status = session.wait_for("const d = document.getElementById('dice'); return d.querySelector('table') ? d.textContent : null", Duration::from_secs(30)).await;
    assert!(status.as_str().unwrap().contains("Dice"), "{status}");
    // No calibration: the page says the mask is the plain 0.5 rule, with no promise.
    let rule = session
        .script("return [document.getElementById('mask-rule').textContent, document.querySelector('.panel table').textContent, document.getElementById('band-choice').hidden];")
        .await;
    assert!(
        rule[0].as_str().unwrap().contains("> 0.5 (not calibrated"),
        "{rule}"
    );
    assert!(
        rule[1].as_str().unwrap().contains("mask threshold"),
        "{rule}"
    );
    assert_eq!(rule[2], true, "{rule}");

    // Key 3 switches every panel to the entropy map, drawn over every pixel.
    session
        .script("document.activeElement.blur(); return true;")
        .await;
    session
        .post(
            "/actions",
            json!({ "actions": [{ "type": "key", "id": "k", "actions": [
        { "type": "keyDown", "value": "3" }, { "type": "keyUp", "value": "3" } ] }] }),
        )
        .await;
    let entropy = session
        .wait_for(&overlay_probe("entropy", 2), Duration::from_secs(30))
        .await;
    let entropy: Vec<u64> = serde_json::from_value(entropy).unwrap();
    assert!(entropy.iter().all(|&n| n == 192 * 144), "{entropy:?}");
    // The canvas really varies: the map is not one flat colour.
    let distinct = session.script(
        "const c = document.querySelector('.panel canvas'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
         const s = new Set(); for (let i = 0; i < d.length; i += 4) s.add(d[i] * 65536 + d[i+1] * 256 + d[i+2]); return s.size;").await;
    assert!(distinct.as_u64().unwrap() > 16, "{distinct}");

    let shot = session
        .call(reqwest::Method::GET, "/screenshot", None)
        .await;
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot.as_str().unwrap())
        .unwrap();
    let target = if std::env::var_os("MEDCLIPSEG_UPDATE_SCREENSHOT").is_some() {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/serve-screenshot.png")
    } else {
        dir.path().join("serve-screenshot.png")
    };
    atomic_io::write_atomic(&target, &png).unwrap();
    assert!(image::load_from_memory(&png).unwrap().width() >= 800);
    session.call(reqwest::Method::DELETE, "", None).await;
    drop(driver);
    server.shutdown(Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_page_slices_a_nifti_volume_with_a_ct_window_and_a_calibration() {
    let dir = tempfile::tempdir().unwrap();
    let Some((driver, session)) = open_browser(dir.path()).await else {
        return;
    };
    // A calibration whose threshold 0 makes every voxel lesion, with a band up to 1.
    let checkpoint = common::micro_checkpoint(dir.path());
    let calibration = dir.path().join("cal.json");
    common::write_calibration(&calibration, &checkpoint, 0.0, Some(1.0));
    let config = common::config(&dir.path().join("store"))
        .with_calibration(&calibration, &checkpoint)
        .unwrap();
    let server = Running::start(config, &checkpoint).await;
    let ct = dir.path().join("ct.nii.gz");
    common::write_ct_nifti(&ct);
    session
        .post("/url", json!({ "url": format!("{}/", server.base) }))
        .await;
    session.type_into("#file", &ct.display().to_string()).await;
    session
        .wait_for(
            "return document.getElementById('run').disabled ? null : true",
            Duration::from_secs(30),
        )
        .await;
    let controls = session
        .script("const v = document.getElementById('volume-controls'); return [v.hidden, document.getElementById('slice').max, document.getElementById('image-info').textContent];")
        .await;
    assert_eq!(controls[0], false, "{controls}");
    assert_eq!(controls[1], "2", "{controls}");
    assert!(
        controls[2].as_str().unwrap().contains("nifti, 20 × 16 × 3"),
        "{controls}"
    );
    session
        .script("const w = document.getElementById('window'); w.value = '40,400'; w.dispatchEvent(new Event('change')); document.getElementById('samples').value = '2'; return true;")
        .await;
    session.type_into(".prompt", PROMPT).await;
    session.click("#run").await;
    session
        .wait_for(&overlay_probe("mask", 1), Duration::from_secs(120))
        .await;
    let numbers = session
        .script("return document.querySelector('.panel table').textContent;")
        .await;
    let numbers = numbers.as_str().unwrap();
    assert!(
        numbers.contains("lesion volume (mm³)") && numbers.contains("this slice (mm²)"),
        "{numbers}"
    );
    let promise = "FNR <= 0.1 in expectation over images like the calibration set";
    assert!(
        numbers.contains(&format!(
            "probability ≥ 0, calibrated on 40 images: {promise}"
        )),
        "{numbers}"
    );
    // Threshold 0: every voxel of the 20 x 16 x 3 volume.
    assert!(numbers.contains("lesion area (px)960"), "{numbers}");
    let header = session
        .script("return document.getElementById('mask-rule').textContent;")
        .await;
    assert!(header.as_str().unwrap().contains(promise), "{header}");
    let window = session
        .script("return state.runs[0].result.request.window;")
        .await;
    assert_eq!(window, "40,400");

    // `]` moves to the last slice, `5` shows the epistemic map over every pixel of it.
    session
        .script("document.activeElement.blur(); return true;")
        .await;
    for key in ["]", "5"] {
        session
            .post(
                "/actions",
                json!({ "actions": [{ "type": "key", "id": "k", "actions": [
                { "type": "keyDown", "value": key }, { "type": "keyUp", "value": key } ] }] }),
            )
            .await;
    }
    let label = session
        .script("return document.getElementById('slice-label').textContent;")
        .await;
    assert_eq!(label, "2 / 2");
    let drawn = session
        .wait_for(&overlay_probe("epistemic", 1), Duration::from_secs(30))
        .await;
    assert_eq!(drawn, json!([20 * 16]));
    // `6`: the uncertain band (every voxel lies in [0, 1) here), drawn like a mask.
    session
        .post(
            "/actions",
            json!({ "actions": [{ "type": "key", "id": "k", "actions": [
            { "type": "keyDown", "value": "6" }, { "type": "keyUp", "value": "6" } ] }] }),
        )
        .await;
    let band = session
        .wait_for(&overlay_probe("band", 1), Duration::from_secs(30))
        .await;
    assert_eq!(band, json!([20 * 16]));
    session.call(reqwest::Method::DELETE, "", None).await;
    drop(driver);
    server.shutdown(Duration::from_secs(30)).await;
}
