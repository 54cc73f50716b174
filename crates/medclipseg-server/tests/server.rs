//! The server end to end over HTTP on an ephemeral port, with a real client (reqwest).

mod common;

use std::time::Duration;

use common::{
    PROMPT, Running, config, micro_checkpoint, predictor, scan_png, write_calibration,
    write_ct_nifti,
};
use medclipseg_server::Access;
use reqwest::StatusCode;
use serde_json::Value;

fn mask_on(png: &[u8]) -> (u32, u32, usize) {
    let mask = image::load_from_memory(png).unwrap().to_luma8();
    assert!(mask.pixels().all(|p| p.0[0] == 0 || p.0[0] == 255));
    let on = mask.pixels().filter(|p| p.0[0] == 255).count();
    (mask.width(), mask.height(), on)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn predict_round_trip_gives_the_library_result_and_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = micro_checkpoint(dir.path());
    let server = Running::start(config(&dir.path().join("store")), &checkpoint).await;

    let info = server.get_json("/api/info").await;
    assert_eq!(info["model"], "medclipseg");
    assert!(info["config"]["vision"].is_object(), "{info}");
    assert_eq!(info["defaults"]["samples"], 2);
    assert!(info["calibration"].is_null(), "{info}");
    assert!(
        info["mask_rule"].as_str().unwrap().contains("> 0.5"),
        "{info}"
    );

    let job = server
        .submit_scan(&[("prompt", PROMPT), ("samples", "3"), ("seed", "7")])
        .await;
    let id = job["id"].as_str().unwrap().to_string();
    let done = server.wait(&id).await;
    assert_eq!(done["state"]["status"], "done", "{done}");
    assert_eq!(done["state"]["done"], 3);
    assert_eq!(done["dims"], serde_json::json!([40, 28, 1]));

    // The same prediction through the library.
    let mut direct = predictor(&checkpoint);
    direct.set_samples(3);
    direct.set_seed(7);
    let image = medclipseg_pipeline::read_image({
        let p = dir.path().join("scan.png");
        std::fs::write(&p, scan_png()).unwrap();
        p
    })
    .unwrap();
    let expected = direct.predict_image(&image, PROMPT).unwrap();
    let expected_on = (expected.foreground_fraction() * 40.0 * 28.0).round() as usize;

    let summary = &done["summary"];
    assert_eq!(summary["mask_px"], expected_on);
    assert_eq!(summary["total_px"], 40 * 28);
    assert!((summary["mean_entropy"].as_f64().unwrap() - expected.mean_entropy()).abs() < 1e-6);
    assert!(summary["area_mm2"].is_null(), "a PNG has no spacing");

    let png = server
        .get_bytes(done["files"]["mask.png"].as_str().unwrap())
        .await;
    assert_eq!(mask_on(&png), (40, 28, expected_on));
    for map in ["probability", "entropy", "aleatoric", "epistemic"] {
        let bytes = server.get_bytes(done["maps"][map].as_str().unwrap()).await;
        let map_png = image::load_from_memory(&bytes).unwrap();
        assert_eq!((map_png.width(), map_png.height()), (40, 28), "{map}");
        assert!(done["files"][format!("{map}.png")].is_string(), "{map}");
    }
    let label = server
        .get_bytes(done["files"]["mask.nii.gz"].as_str().unwrap())
        .await;
    let path = dir.path().join("mask.nii.gz");
    std::fs::write(&path, label).unwrap();
    assert_eq!(med_volumes::read_nifti(&path).unwrap().dims(), [40, 28, 1]);

    // The same job compared with itself: DSC 1.
    let same: Value = server
        .get_json(&format!("/api/compare?a={id}&b={id}"))
        .await;
    assert_eq!(same["dice"], 1.0);

    // The page and its assets are served.
    let page = String::from_utf8(server.get_bytes("/").await).unwrap();
    assert!(page.contains("MedCLIPSeg") && page.contains("app.js"));
    server.shutdown(Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn progress_streams_per_chunk_until_done() {
    let dir = tempfile::tempdir().unwrap();
    let server = Running::start_micro(dir.path()).await;
    let job = server
        .submit_scan(&[("prompt", PROMPT), ("samples", "24")])
        .await;
    let events = server.get_bytes(job["events_url"].as_str().unwrap()).await;
    let text = String::from_utf8(events).unwrap();
    let states: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let last = states.last().expect("at least one event");
    assert_eq!(last["status"], "done", "{text}");
    assert_eq!(last["done"], 24);
    assert_eq!(last["total"], 24);
    let done: Vec<u64> = states.iter().map(|s| s["done"].as_u64().unwrap()).collect();
    assert!(done.windows(2).all(|w| w[0] <= w[1]), "{done:?}");
    assert!(text.contains("event: progress"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_inputs_get_4xx_json_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let server = Running::start_micro(dir.path()).await;
    let error = |r: reqwest::Response| async move {
        let status = r.status();
        let body: Value = r.json().await.expect("a JSON error body");
        (status, body["error"].as_str().unwrap().to_string())
    };

    let (s, e) = error(server.predict(Some(("scan.png", scan_png())), &[]).await).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(e.contains("prompt"), "{e}");

    let (s, e) = error(
        server
            .predict(
                Some(("broken.png", b"\x89PNG not really".to_vec())),
                &[("prompt", PROMPT)],
            )
            .await,
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(e.contains("broken.png"), "{e}");
    assert!(
        !e.contains(dir.path().to_str().unwrap()),
        "the server's folder leaks: {e}"
    );

    let (s, e) = error(server.predict(None, &[("prompt", PROMPT)]).await).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(e.contains("image"), "{e}");

    for (samples, word) in [("0", "samples"), ("many", "samples"), ("999999", "samples")] {
        let (s, e) = error(
            server
                .predict(
                    Some(("scan.png", scan_png())),
                    &[("prompt", PROMPT), ("samples", samples)],
                )
                .await,
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{samples}");
        assert!(e.contains(word), "{e}");
    }
    let (s, e) = error(
        server
            .predict(
                Some(("scan.png", scan_png())),
                &[("prompt", PROMPT), ("window", "40")],
            )
            .await,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(e.contains("window"), "{e}");

    // A multipart header with a body that is not multipart.
    let r = server
        .client
        .post(server.url("/api/predict"))
        .header("content-type", "multipart/form-data; boundary=XYZ")
        .body("garbage without any boundary")
        .send()
        .await
        .unwrap();
    let (s, e) = error(r).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(e.contains("multipart"), "{e}");

    // Not multipart at all.
    let r = server
        .client
        .post(server.url("/api/predict"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());

    let form = reqwest::multipart::Form::new().text("params", "{}");
    let r = server.post_form("/infer/not-a-model?image=x", form).await;
    let (s, e) = error(r).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(e.contains("not-a-model"), "{e}");

    let form = reqwest::multipart::Form::new().text("params", "{not json");
    let r = server.post_form("/infer/medclipseg?image=x", form).await;
    let (s, e) = error(r).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(e.contains("params"), "{e}");

    for path in [
        "/api/jobs/job-404",
        "/api/images/nothing",
        "/no/such/route",
        "/auth/",
    ] {
        let (s, _) = error(server.client.get(server.url(path)).send().await.unwrap()).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
    }
    let r = server
        .client
        .get(server.url("/train/?check_if_running=true"))
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn client_chosen_paths_never_reach_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let server = Running::start(config(&store), &micro_checkpoint(dir.path())).await;
    for id in ["../../x", "..", "a/b", ".hidden"] {
        let form = reqwest::multipart::Form::new().text("params", "{}").part(
            "file",
            reqwest::multipart::Part::bytes(scan_png()).file_name("scan.png"),
        );
        let r = server
            .client
            .put(server.url("/datastore/"))
            .query(&[("image", id)])
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{id}");
        let body: Value = r.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains("bad image id"),
            "{body}"
        );
    }
    assert!(!dir.path().join("x").exists());
    let r = server
        .client
        .get(server.url("/api/images/..%2F..%2Fx"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // A file name that is a path keeps its base name; a job serves only the files it listed.
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(scan_png()).file_name("../../../escape.png"),
        )
        .text("prompt", PROMPT);
    let r = server.post_form("/api/predict", form).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let job: Value = r.json().await.unwrap();
    let id = job["id"].as_str().unwrap();
    server.wait(id).await;
    assert!(!dir.path().join("escape.png").exists());
    let images = server.get_json("/api/images").await;
    assert_eq!(images["images"][0]["name"], "escape.png");
    for name in [
        "..%2F..%2Fmicro.safetensors",
        "result.json.bak",
        "..",
        "%2Fetc%2Fpasswd",
    ] {
        let r = server
            .client
            .get(server.url(&format!("/api/jobs/{id}/files/{name}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_oversized_upload_is_refused_with_413() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&dir.path().join("store"));
    config.max_upload = 64 * 1024;
    let mut server = Running::start(config, &micro_checkpoint(dir.path())).await;
    let big = vec![7u8; 256 * 1024];
    let r = server
        .predict(Some(("big.png", big)), &[("prompt", PROMPT)])
        .await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"].is_string(), "{body}");
    // Still answering, on a new connection: the server closes the one whose body it refused,
    // and a pooled reuse of it races that close (hyper's IncompleteMessage).
    server.client = reqwest::Client::new();
    server.submit_scan(&[("prompt", PROMPT)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_concurrent_requests_are_all_answered_correctly() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = micro_checkpoint(dir.path());
    let server =
        std::sync::Arc::new(Running::start(config(&dir.path().join("store")), &checkpoint).await);
    let prompts = [PROMPT, "a dark spot on the left"];
    let mut tasks = Vec::new();
    for n in 0..16u64 {
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            let seed = n.to_string();
            let prompt = prompts[(n % 2) as usize];
            let job = server
                .submit_scan(&[("prompt", prompt), ("seed", &seed), ("samples", "2")])
                .await;
            let done = server.wait(job["id"].as_str().unwrap()).await;
            (n, done)
        }));
    }
    let image = {
        let p = dir.path().join("scan.png");
        std::fs::write(&p, scan_png()).unwrap();
        medclipseg_pipeline::read_image(p).unwrap()
    };
    let mut direct = predictor(&checkpoint);
    direct.set_samples(2);
    let mut ids = std::collections::HashSet::new();
    for task in tasks {
        let (n, done) = task.await.unwrap();
        assert_eq!(done["state"]["status"], "done", "{done}");
        assert!(
            ids.insert(done["id"].as_str().unwrap().to_string()),
            "a job id twice"
        );
        assert_eq!(done["request"]["seed"], n);
        direct.set_seed(n);
        let expected = direct
            .predict_image(&image, prompts[(n % 2) as usize])
            .unwrap();
        let got = done["summary"]["mean_entropy"].as_f64().unwrap();
        assert!(
            (got - expected.mean_entropy()).abs() < 1e-6,
            "job {n}: {got} vs {}",
            expected.mean_entropy()
        );
    }
    assert_eq!(ids.len(), 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_running_job_is_cancelled_and_the_worker_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let server = Running::start_micro(dir.path()).await;
    let job = server
        .submit_scan(&[("prompt", PROMPT), ("samples", "20000")])
        .await;
    let id = job["id"].as_str().unwrap().to_string();
    // Wait until it runs.
    for _ in 0..400 {
        let now = server.get_json(&format!("/api/jobs/{id}")).await;
        if now["state"]["done"].as_u64().unwrap() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let r = server
        .client
        .post(server.url(&format!("/api/jobs/{id}/cancel")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let end = server.wait(&id).await;
    assert_eq!(end["state"]["status"], "cancelled", "{end}");
    assert!(end["state"]["done"].as_u64().unwrap() < 20_000);
    let next = server.submit_scan(&[("prompt", PROMPT)]).await;
    assert_eq!(
        server.wait(next["id"].as_str().unwrap()).await["state"]["status"],
        "done"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_queue_answers_503_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&dir.path().join("store"));
    config.queue = 1;
    let server = Running::start(config, &micro_checkpoint(dir.path())).await;
    let mut statuses = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..4 {
        let r = server
            .predict(
                Some(("scan.png", scan_png())),
                &[("prompt", PROMPT), ("samples", "20000")],
            )
            .await;
        statuses.push(r.status());
        if r.status() == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(r.headers()["retry-after"], "5");
            let body: Value = r.json().await.unwrap();
            assert!(body["error"].as_str().unwrap().contains("queue"), "{body}");
        } else {
            let job: Value = r.json().await.unwrap();
            ids.push(job["id"].as_str().unwrap().to_string());
        }
    }
    assert!(
        statuses.contains(&StatusCode::SERVICE_UNAVAILABLE),
        "{statuses:?}"
    );
    // Ctrl-C with a running and a queued job: both end cancelled, the server stops promptly.
    let jobs = server.client.clone();
    let urls: Vec<String> = ids
        .iter()
        .map(|id| server.url(&format!("/api/jobs/{id}")))
        .collect();
    server.shutdown(Duration::from_secs(60)).await;
    assert!(
        jobs.get(&urls[0]).send().await.is_err(),
        "the server is gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_server_keeps_its_datastore_and_evicts_the_oldest() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = micro_checkpoint(dir.path());
    let store = dir.path().join("store");
    let mut cfg = config(&store);
    cfg.datastore_limit = 2;
    let put = |server: &Running, id: &str| {
        let form = reqwest::multipart::Form::new().text("params", "{}").part(
            "file",
            reqwest::multipart::Part::bytes(scan_png()).file_name("/home/me/scan.png"),
        );
        server
            .client
            .put(server.url("/datastore/"))
            .query(&[("image", id)])
            .multipart(form)
            .send()
    };
    let server = Running::start(cfg.clone(), &checkpoint).await;
    for id in ["first", "second"] {
        let r = put(&server, id).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.json::<Value>().await.unwrap()["image"], id);
    }
    server.shutdown(Duration::from_secs(30)).await;

    let server = Running::start(cfg, &checkpoint).await;
    let listed = server.get_json("/datastore/").await;
    assert_eq!(listed["total"], 2, "{listed}");
    let form = reqwest::multipart::Form::new().text("params", r#"{"samples": 2}"#);
    let r = server
        .post_form("/infer/medclipseg?image=first&output=json", form)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let params: Value = r.json().await.unwrap();
    assert_eq!(params["samples"], 2);
    assert!(params["summary"]["mask_px"].is_u64(), "{params}");
    // A third image evicts the oldest.
    assert_eq!(
        put(&server, "third").await.unwrap().status(),
        StatusCode::OK
    );
    let r = server
        .client
        .get(server.url("/api/images/first"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = server
        .client
        .get(server.url("/api/images/third"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_token_is_required_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&dir.path().join("store"));
    cfg.access = Access::Token("s3cret-token".into());
    let server = Running::start(cfg, &micro_checkpoint(dir.path())).await;
    let get = |path: &str| server.client.get(server.url(path));
    assert_eq!(
        get("/api/info").send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get("/api/info")
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get("/api/info")
            .bearer_auth("s3cret-token")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        get("/info/?token=s3cret-token")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        get("/auth/").send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
}

/// Parses a `multipart/form-data` reply into (name, file name, bytes) parts.
fn parts(content_type: &str, body: &[u8]) -> Vec<(String, Option<String>, Vec<u8>)> {
    let boundary = content_type
        .split("boundary=")
        .nth(1)
        .unwrap()
        .trim_matches('"');
    let delimiter = format!("--{boundary}");
    let mut out = Vec::new();
    let text = body;
    let find = |hay: &[u8], needle: &[u8], from: usize| {
        hay[from..]
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|p| p + from)
    };
    let mut at = find(text, delimiter.as_bytes(), 0).unwrap() + delimiter.len();
    while &text[at..at + 2] != b"--" {
        let head_end = find(text, b"\r\n\r\n", at).unwrap();
        let head = String::from_utf8_lossy(&text[at..head_end]).to_string();
        let next = find(text, format!("\r\n{delimiter}").as_bytes(), head_end).unwrap();
        let name = head
            .split("name=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_string();
        let file = head
            .split("filename=\"")
            .nth(1)
            .map(|f| f.split('"').next().unwrap().to_string());
        out.push((name, file, text[head_end + 4..next].to_vec()));
        at = next + 2 + delimiter.len();
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn monai_label_infer_answers_a_label_file_on_the_volume_grid() {
    let dir = tempfile::tempdir().unwrap();
    let server = Running::start_micro(dir.path()).await;
    let info = server.get_json("/info/").await;
    assert!(
        info.get("config").is_none(),
        "Slicer refuses a top-level config"
    );
    let model = &info["models"]["medclipseg"];
    assert_eq!(model["type"], "segmentation");
    assert_eq!(model["config"]["prompt"], PROMPT);
    assert!(
        model["labels"].is_object() && model["dimension"].is_u64(),
        "{info}"
    );

    let ct_path = dir.path().join("ct.nii.gz");
    write_ct_nifti(&ct_path);
    let ct = med_volumes::read_nifti(&ct_path).unwrap();
    let form = reqwest::multipart::Form::new().text("params", "{}").part(
        "file",
        reqwest::multipart::Part::bytes(std::fs::read(&ct_path).unwrap())
            .file_name(ct_path.display().to_string()),
    );
    let r = server
        .client
        .put(server.url("/datastore/?image=ct1"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["image"], "ct1");

    let form = reqwest::multipart::Form::new().text(
        "params",
        r#"{"prompt": "a dark spot on the left", "samples": "2", "result_extension": ".nrrd"}"#,
    );
    let r = server.post_form("/infer/medclipseg?image=ct1", form).await;
    assert_eq!(r.status(), StatusCode::OK);
    let content_type = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(
        content_type.starts_with("multipart/form-data"),
        "{content_type}"
    );
    let body = r.bytes().await.unwrap();
    let parts = parts(&content_type, &body);
    let params: Value =
        serde_json::from_slice(&parts.iter().find(|p| p.0 == "params").unwrap().2).unwrap();
    assert_eq!(params["prompt"], "a dark spot on the left");
    assert!(params["summary"]["mean_entropy"].is_f64(), "{params}");
    let (_, file, bytes) = parts.iter().find(|p| p.1.is_some()).unwrap();
    let file = file.as_ref().unwrap();
    assert!(file.ends_with(".nii.gz"), "{file}");
    let out = dir.path().join(file);
    std::fs::write(&out, bytes).unwrap();
    let label = med_volumes::read_nifti(&out).unwrap();
    assert_eq!(label.dims(), ct.dims());
    assert_eq!(label.spacing(), ct.spacing());
    assert_eq!(label.affine(), ct.affine());
    assert!(label.data().iter().all(|&v| v == 0.0 || v == 1.0));

    let r = server
        .client
        .post(server.url("/infer/medclipseg?image=ct1&output=image"))
        .multipart(reqwest::multipart::Form::new().text("params", "{}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains(".nii.gz")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dicom_series_uploads_as_files_and_predicts_on_its_grid() {
    let dir = tempfile::tempdir().unwrap();
    let server = Running::start_micro(dir.path()).await;
    let series = dir.path().join("series");
    std::fs::create_dir_all(&series).unwrap();
    med_volumes::testing::write_ct_series(&series, 12, 10, 3).unwrap();
    let mut form = reqwest::multipart::Form::new();
    for entry in std::fs::read_dir(&series).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        form = form.part(
            "files",
            reqwest::multipart::Part::bytes(std::fs::read(&path).unwrap()).file_name(name),
        );
    }
    let r = server.post_form("/api/images", form).await;
    assert_eq!(r.status(), StatusCode::OK);
    let image: Value = r.json().await.unwrap();
    assert_eq!(image["kind"], "dicom");
    assert_eq!(image["dims"], serde_json::json!([10, 12, 3]));
    let id = image["id"].as_str().unwrap();
    let view = server
        .get_bytes(&format!(
            "/api/images/{id}/view.png?axis=2&index=1&window=40,400"
        ))
        .await;
    let view = image::load_from_memory(&view).unwrap();
    assert_eq!((view.width(), view.height()), (10, 12));

    let r = server
        .predict(None, &[("image", id), ("prompt", PROMPT), ("samples", "2")])
        .await;
    let job: Value = r.json().await.unwrap();
    let done = server.wait(job["id"].as_str().unwrap()).await;
    assert_eq!(done["state"]["status"], "done", "{done}");
    assert!(done["summary"]["volume_mm3"].is_f64(), "{done}");
    assert!(done["files"]["entropy.nii.gz"].is_string());
    let slice = server
        .get_bytes(&format!(
            "{}?axis=2&index=2",
            done["maps"]["entropy"].as_str().unwrap()
        ))
        .await;
    assert_eq!(image::load_from_memory(&slice).unwrap().width(), 10);
    let r = server
        .client
        .get(server.url(&format!(
            "{}?axis=2&index=3",
            done["maps"]["mask"].as_str().unwrap()
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "slice 3 of 3 does not exist"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_past_the_timeout_gets_408_and_its_job_is_not_lost() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&dir.path().join("store"));
    cfg.request_timeout = Duration::from_millis(500);
    let server = Running::start(cfg, &micro_checkpoint(dir.path())).await;
    let form = reqwest::multipart::Form::new()
        .text("params", r#"{"samples": 20000}"#)
        .part(
            "file",
            reqwest::multipart::Part::bytes(scan_png()).file_name("scan.png"),
        );
    let r = server.post_form("/infer/medclipseg", form).await;
    assert_eq!(r.status(), StatusCode::REQUEST_TIMEOUT);
    // The server still answers, and Ctrl-C cancels the long job it left behind.
    assert_eq!(server.get_json("/api/info").await["model"], "medclipseg");
    server.shutdown(Duration::from_secs(60)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_zipped_series_is_extracted_under_flat_names_only() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let server = Running::start(config(&store), &micro_checkpoint(dir.path())).await;
    let series = dir.path().join("series");
    std::fs::create_dir_all(&series).unwrap();
    med_volumes::testing::write_ct_series(&series, 8, 6, 4).unwrap();
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (n, entry) in std::fs::read_dir(&series).unwrap().enumerate() {
        // Hostile entry names: they must not become paths.
        let name = if n == 0 {
            "../../escaped.dcm".to_string()
        } else {
            format!("/abs/dir/{n}.dcm")
        };
        zip.start_file(name, options).unwrap();
        zip.write_all(&std::fs::read(entry.unwrap().path()).unwrap())
            .unwrap();
    }
    let bytes = zip.finish().unwrap().into_inner();
    let form = reqwest::multipart::Form::new().part(
        "files",
        reqwest::multipart::Part::bytes(bytes).file_name("series.zip"),
    );
    let r = server.post_form("/api/images", form).await;
    assert_eq!(r.status(), StatusCode::OK);
    let image: Value = r.json().await.unwrap();
    assert_eq!(image["kind"], "dicom");
    assert_eq!(image["dims"], serde_json::json!([6, 8, 4]));
    assert!(!dir.path().join("escaped.dcm").exists() && !store.join("escaped.dcm").exists());

    // A zip that is not one: 422 naming it.
    let form = reqwest::multipart::Form::new().part(
        "files",
        reqwest::multipart::Part::bytes(b"PK not a zip".to_vec()).file_name("broken.zip"),
    );
    let r = server.post_form("/api/images", form).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("broken.zip"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn maps_of_older_jobs_are_read_back_from_their_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&dir.path().join("store"));
    cfg.maps_in_memory = 1;
    let server = Running::start(cfg, &micro_checkpoint(dir.path())).await;
    let mut jobs = Vec::new();
    for seed in ["1", "2"] {
        let job = server
            .submit_scan(&[("prompt", PROMPT), ("seed", seed)])
            .await;
        jobs.push(server.wait(job["id"].as_str().unwrap()).await);
    }
    let (old, new) = (&jobs[0], &jobs[1]);
    let id = old["id"].as_str().unwrap();
    assert!(
        !server.state_in_memory(id),
        "the first job's maps were released"
    );
    // Its map PNGs are the same whether held or read back: the stored PNG bytes.
    for map in ["mask", "probability", "entropy"] {
        let served = server.get_bytes(old["maps"][map].as_str().unwrap()).await;
        let stored = server
            .get_bytes(old["files"][format!("{map}.png")].as_str().unwrap())
            .await;
        let decode = |b: &[u8]| image::load_from_memory(b).unwrap().to_luma8().into_raw();
        assert_eq!(decode(&served), decode(&stored), "{map}");
    }
    let (a, b) = (old["id"].as_str().unwrap(), new["id"].as_str().unwrap());
    let dice: Value = server.get_json(&format!("/api/compare?a={a}&b={b}")).await;
    let (na, nb) = (
        dice["a_px"].as_u64().unwrap(),
        dice["b_px"].as_u64().unwrap(),
    );
    assert_eq!(na, old["summary"]["mask_px"].as_u64().unwrap());
    assert_eq!(nb, new["summary"]["mask_px"].as_u64().unwrap());
}

/// Probabilities at `q` in [0, 1] of the sorted values.
fn quantile(sorted: &[f32], q: f64) -> f32 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_calibration_thresholds_masks_at_its_value_and_says_what_it_promises() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = micro_checkpoint(dir.path());
    let scan = dir.path().join("scan.png");
    std::fs::write(&scan, scan_png()).unwrap();
    let mut direct = predictor(&checkpoint);
    direct.set_samples(3);
    direct.set_seed(7);
    let image = medclipseg_pipeline::read_image(&scan).unwrap();
    let expected = direct.predict_image(&image, PROMPT).unwrap();
    let uncalibrated_px = expected.probability.iter().filter(|&&p| p > 0.5).count();
    let mut sorted = expected.probability.clone();
    sorted.sort_by(f32::total_cmp);
    let at_least = |t: f32| expected.probability.iter().filter(|&&p| p >= t).count();
    // A threshold whose mask differs from the 0.5 one (so the test fails if it is ignored).
    let threshold = [0.1, 0.9, 0.25, 0.75]
        .into_iter()
        .map(|q| quantile(&sorted, q))
        .find(|&t| at_least(t) != uncalibrated_px)
        .expect("the micro model's probabilities are not all on one side of 0.5");
    let other = quantile(&sorted, if at_least(threshold) > 560 { 0.8 } else { 0.2 });
    let (low, high) = (threshold.min(other), threshold.max(other));
    let band_px = expected
        .probability
        .iter()
        .filter(|&&p| p >= low && p < high)
        .count();
    let calibration = dir.path().join("cal.json");
    write_calibration(&calibration, &checkpoint, threshold, Some(other));
    let config = config(&dir.path().join("store"))
        .with_calibration(&calibration, &checkpoint)
        .unwrap();
    let server = Running::start(config, &checkpoint).await;

    let info = server.get_json("/api/info").await;
    let cal = &info["calibration"];
    let value = seg_metrics::conformal::threshold_value(threshold);
    assert_eq!(cal["threshold"], value, "{info}");
    assert_eq!(
        (&cal["risk"], &cal["alpha"], &cal["n"]),
        (&"fnr".into(), &0.1.into(), &40.into())
    );
    let promise = "FNR <= 0.1 in expectation over images like the calibration set";
    assert_eq!(cal["statement"], promise);
    assert!(
        info["mask_rule"]
            .as_str()
            .unwrap()
            .contains(&format!(">= {value}")),
        "{info}"
    );

    let job = server
        .submit_scan(&[("prompt", PROMPT), ("samples", "3"), ("seed", "7")])
        .await;
    let done = server.wait(job["id"].as_str().unwrap()).await;
    assert_eq!(done["state"]["status"], "done", "{done}");
    assert_eq!(done["summary"]["mask_px"], at_least(threshold));
    assert_ne!(at_least(threshold), uncalibrated_px);
    assert_eq!(done["calibration"]["statement"], promise);
    assert_eq!(done["calibration"]["threshold"], value);
    let mask = server
        .get_bytes(done["files"]["mask.png"].as_str().unwrap())
        .await;
    assert_eq!(mask_on(&mask), (40, 28, at_least(threshold)));
    let band = server
        .get_bytes(done["maps"]["band"].as_str().unwrap())
        .await;
    assert_eq!(mask_on(&band), (40, 28, band_px));
    assert!(done["files"]["band.nii.gz"].is_string(), "{done}");
    let result: Value = serde_json::from_slice(
        &server
            .get_bytes(done["files"]["result.json"].as_str().unwrap())
            .await,
    )
    .unwrap();
    assert_eq!(result["calibration"]["statement"], promise);
    assert_eq!(
        result["calibration"]["band"]["low"],
        seg_metrics::conformal::threshold_value(low)
    );
    // The MONAI Label reply's params say it too (same image, same seed: the same mask).
    let image = done["request"]["image"].as_str().unwrap();
    let form = reqwest::multipart::Form::new().text("params", r#"{"samples": 3, "seed": 7}"#);
    let r = server
        .post_form(
            &format!("/infer/medclipseg?image={image}&output=json"),
            form,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let params: Value = r.json().await.unwrap();
    assert_eq!(params["calibration"]["statement"], promise, "{params}");
    assert_eq!(params["summary"]["mask_px"], at_least(threshold));

    // A volume: its mask is the calibrated rule on its own probability volume.
    let ct = dir.path().join("ct.nii.gz");
    write_ct_nifti(&ct);
    let reply = server
        .predict(
            Some(("ct.nii.gz", std::fs::read(&ct).unwrap())),
            &[("prompt", PROMPT), ("samples", "2")],
        )
        .await;
    let job: Value = reply.json().await.unwrap();
    let done = server.wait(job["id"].as_str().unwrap()).await;
    assert_eq!(done["state"]["status"], "done", "{done}");
    let read = |name: &str, bytes: Vec<u8>| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        med_volumes::read_nifti(&path).unwrap()
    };
    let file = |name: &str| done["files"][name].as_str().unwrap().to_string();
    let probability = read(
        "p.nii.gz",
        server.get_bytes(&file("probability.nii.gz")).await,
    );
    let mask = read("m.nii.gz", server.get_bytes(&file("mask.nii.gz")).await);
    let rule: Vec<f32> = probability
        .data()
        .iter()
        .map(|&p| f32::from(u8::from(p >= threshold)))
        .collect();
    assert_eq!(mask.data(), &rule[..]);
    assert_eq!(
        done["summary"]["mask_px"],
        rule.iter().filter(|&&v| v > 0.5).count()
    );
    assert!(done["files"]["band.nii.gz"].is_string(), "{done}");
    server.shutdown(Duration::from_secs(30)).await;
}

#[test]
fn a_calibration_made_with_another_checkpoint_or_broken_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = micro_checkpoint(dir.path());
    let other_dir = dir.path().join("other");
    std::fs::create_dir_all(&other_dir).unwrap();
    let other = micro_checkpoint(&other_dir);
    let calibration = dir.path().join("cal.json");
    write_calibration(&calibration, &other, 0.3, None);
    let error = config(&dir.path().join("store"))
        .with_calibration(&calibration, &checkpoint)
        .unwrap_err()
        .to_string();
    let ours = medclipseg_pipeline::calibrator::sha256_file(&checkpoint).unwrap();
    let theirs = medclipseg_pipeline::calibrator::sha256_file(&other).unwrap();
    assert_ne!(ours, theirs);
    assert!(
        error.contains(&calibration.display().to_string())
            && error.contains(&ours)
            && error.contains(&theirs)
            && error.contains("no guarantee"),
        "{error}"
    );

    // α outside (0, 1): an error naming the file.
    let text = std::fs::read_to_string(&calibration)
        .unwrap()
        .replace("\"alpha\": 0.1", "\"alpha\": 1.5");
    std::fs::write(&calibration, text).unwrap();
    let error = config(&dir.path().join("store"))
        .with_calibration(&calibration, &other)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(&calibration.display().to_string()) && error.contains("1.5"),
        "{error}"
    );
}
