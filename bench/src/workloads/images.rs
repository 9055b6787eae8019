//! small_layer_image: whole images of many small layers, pushed the way a client does it
//! (HEAD, POST, PUT for every blob, then the manifest), by one pusher and by eight.

use anyhow::{Context, Result};
use bytes::Bytes;
use reqwest::{Client, Url};

use super::{Ctx, idx, measure};
use crate::client;
use crate::content::{Blob, Rng};
use crate::figures::{Better, Figure};
use crate::servers::Kind;

/// One image, generated before the timed region.
struct Image {
    config: Blob,
    layers: Vec<Blob>,
    manifest: Bytes,
}

impl Image {
    fn random(layers: usize, layer_size: usize) -> Image {
        let mut rng = Rng::unique();
        let config = client::image_config(&rng.hex(16));
        let layers: Vec<Blob> = (0..layers).map(|_| Blob::from_bytes(rng.bytes(layer_size))).collect();
        let refs: Vec<&Blob> = layers.iter().collect();
        let manifest = client::image_manifest(&config, &refs, None);
        Image {
            config,
            layers,
            manifest,
        }
    }

    /// Pushes every blob (HEAD → 404, POST, PUT), then the manifest under `tag`.
    async fn push(&self, client: &Client, base: &Url, repo: &str, tag: &str) -> Result<()> {
        for blob in self.layers.iter().chain(std::iter::once(&self.config)) {
            client::push_blob_checked(client, base, repo, blob).await?;
        }
        client::put_manifest(client, base, repo, tag, self.manifest.clone()).await
    }
}

async fn images(count: usize, layers: (usize, usize)) -> Result<Vec<Image>> {
    Ok(tokio::task::spawn_blocking(move || (0..count).map(|_| Image::random(layers.0, layers.1)).collect()).await?)
}

/// small_layer_image with 1 pusher (seconds per image) and with 8 (images per second).
pub async fn small_layer_image(ctx: &mut Ctx) -> Result<Vec<Figure>> {
    let (layers, layer_size) = ctx.scale.image_layers;
    let shape = format!("{layers} layers of {} KiB + config", layer_size / 1024);

    let mut secs: [Vec<f64>; 2] = Default::default();
    let mut cpu: [Vec<f64>; 2] = Default::default();
    for rep in 0..ctx.scale.images_single {
        for kind in Kind::ALTERNATION {
            let image = images(1, ctx.scale.image_layers).await?.remove(0);
            let server = ctx.server(kind);
            let tag = format!("i{rep}");
            let (_, m) = measure(ctx, kind, image.push(&ctx.client, &server.base, "img/single", &tag))
                .await
                .with_context(|| format!("small_layer_image (1 pusher) to {kind}, image {rep}"))?;
            eprintln!(
                "    {kind:<10} {:>8.3} s/image  {:>6.3} CPU-s/image",
                m.seconds, m.cpu_seconds
            );
            secs[idx(kind)].push(m.seconds);
            cpu[idx(kind)].push(m.cpu_seconds);
        }
    }
    let [r, b] = secs;
    let single = Figure::new("small_layer_image_1_pusher", "s/image", Better::Lower, r, b)
        .with_cpu("CPU-s/image", &cpu[0], &cpu[1])
        .target_speedup(10.0)
        .note(format!("{shape}; median of {} images", ctx.scale.images_single));

    let (pushers, per_pusher) = ctx.scale.images_multi;
    let total = pushers * per_pusher;
    let mut rate: [Vec<f64>; 2] = Default::default();
    let mut cpu: [Vec<f64>; 2] = Default::default();
    for kind in Kind::ALTERNATION {
        let all = images(total, ctx.scale.image_layers).await?;
        let server = ctx.server(kind);
        let client = &ctx.client;
        let base = &server.base;
        let all = &all;
        let run = futures::future::try_join_all((0..pushers).map(|p| async move {
            let repo = format!("img/pusher{p}");
            for i in 0..per_pusher {
                all[p * per_pusher + i]
                    .push(client, base, &repo, &format!("i{i}"))
                    .await?;
            }
            Ok::<_, anyhow::Error>(())
        }));
        let (_, m) = measure(ctx, kind, run)
            .await
            .with_context(|| format!("small_layer_image ({pushers} pushers) to {kind}"))?;
        let per_s = total as f64 / m.seconds;
        eprintln!(
            "    {kind:<10} {per_s:>8.3} images/s  {:>6.3} CPU-s/image",
            m.cpu_seconds / total as f64
        );
        rate[idx(kind)].push(per_s);
        cpu[idx(kind)].push(m.cpu_seconds / total as f64);
    }
    let [r, b] = rate;
    let multi = Figure::new(
        &format!("small_layer_image_{pushers}_pushers"),
        "images/s",
        Better::Higher,
        r,
        b,
    )
    .with_cpu("CPU-s/image", &cpu[0], &cpu[1])
    .target_speedup(10.0)
    .note(format!(
        "{shape}; {pushers} concurrent pushers, {per_pusher} images each, own repository each"
    ));
    Ok(vec![single, multi])
}
