//! What a tenant may choose of the serving engine: the platform's pinned
//! images and an allow-list of `vllm serve` flags. The hub refuses any
//! other image or flag at admission (`serving.image`, `serving.extraArgs`),
//! naming it; the platform widens either list with its settings.
//!
//! Flags left out on purpose: those that run code from the network or the
//! weights (`--trust-remote-code`, `--speculative-config`, custom
//! `--worker-cls`…), that change what the engine listens on or trusts
//! (`--host`, `--port`, `--api-key`, `--allowed-origins`, `--ssl-*`), and
//! those the planner decides (precision, parallelism, memory, context
//! length, the served model's name).

/// vLLM's OpenAI-compatible server image for NVIDIA GPUs, pinned.
/// The port every engine answers on (OpenAI API, `/health`, `/metrics`):
/// the operator starts it there and the gateway calls it there.
pub const ENGINE_HTTP_PORT: u16 = 8000;

pub const VLLM_IMAGE: &str = "vllm/vllm-openai:v0.13.0";
/// vllm-ascend's image for Atlas A2 (910B); the same release as [`VLLM_IMAGE`],
/// since vllm-ascend versions follow the vLLM they plug into.
pub const VLLM_ASCEND_IMAGE: &str = "quay.io/ascend/vllm-ascend:v0.13.0";
/// vllm-ascend publishes Atlas A3 (910C) builds under the same tag plus `-a3`.
pub const VLLM_ASCEND_A3_IMAGE: &str = "quay.io/ascend/vllm-ascend:v0.13.0-a3";

/// The images allowed unless the platform says more.
pub const DEFAULT_IMAGES: [&str; 3] = [VLLM_IMAGE, VLLM_ASCEND_IMAGE, VLLM_ASCEND_A3_IMAGE];

/// `vllm serve` flags a tenant may pass unless the platform says more:
/// scheduling, caching, logging and chat behaviour.
pub const DEFAULT_FLAGS: [&str; 22] = [
    "--max-num-seqs",
    "--max-num-batched-tokens",
    "--enable-prefix-caching",
    "--no-enable-prefix-caching",
    "--enable-chunked-prefill",
    "--no-enable-chunked-prefill",
    "--kv-cache-dtype",
    "--block-size",
    "--swap-space",
    "--seed",
    "--enforce-eager",
    "--disable-log-requests",
    "--disable-log-stats",
    "--scheduling-policy",
    "--long-prefill-token-threshold",
    "--generation-config",
    "--tokenizer-mode",
    "--enable-auto-tool-choice",
    "--tool-call-parser",
    "--reasoning-parser",
    "--limit-mm-per-prompt",
    "--max-logprobs",
];

/// Checks an engine image and extra arguments against the allowed ones:
/// the first that is not allowed, said so that a tenant can fix it.
pub fn check(
    image: Option<&str>,
    extra_args: &[String],
    images: &[String],
    flags: &[String],
) -> Result<(), String> {
    if let Some(image) = image
        && !images.iter().any(|allowed| allowed == image)
    {
        return Err(format!(
            "serving.image {image:?} is not an engine image this platform runs; leave it out \
             for the pinned one, or use one of: {}",
            images.join(", ")
        ));
    }
    let mut value_allowed = false;
    for arg in extra_args {
        if arg.starts_with('-') {
            let name = arg.split_once('=').map_or(arg.as_str(), |(name, _)| name);
            if !flags.iter().any(|allowed| allowed == name) {
                return Err(format!(
                    "serving.extraArgs: {name:?} is not a flag this platform lets tenants pass \
                     to vLLM; allowed: {}",
                    flags.join(", ")
                ));
            }
            value_allowed = !arg.contains('=');
        } else if value_allowed {
            value_allowed = false;
        } else {
            return Err(format!(
                "serving.extraArgs: {arg:?} is not a flag's value; give flags as --name value \
                 or --name=value"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> (Vec<String>, Vec<String>) {
        (
            DEFAULT_IMAGES.map(str::to_owned).to_vec(),
            DEFAULT_FLAGS.map(str::to_owned).to_vec(),
        )
    }

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn only_the_platforms_images_and_flags_pass() {
        let (images, flags) = defaults();
        let ok = |image: Option<&str>, a: &[&str]| check(image, &args(a), &images, &flags);
        assert_eq!(ok(None, &[]), Ok(()));
        assert_eq!(
            ok(
                Some(VLLM_IMAGE),
                &["--max-num-seqs", "64", "--enforce-eager"]
            ),
            Ok(())
        );
        assert_eq!(ok(None, &["--max-num-batched-tokens=8192"]), Ok(()));
        let refused = ok(Some("docker.io/evil/miner:latest"), &[]).unwrap_err();
        assert!(refused.contains("evil/miner"), "{refused}");
        for bad in [
            &["--trust-remote-code"][..],
            &["--api-key", "x"],
            &["--host=0.0.0.0"],
            &["--enforce-eager", "stray", "positional"],
            &["positional"],
        ] {
            assert!(ok(None, bad).is_err(), "{bad:?}");
        }
        let why = ok(None, &["--trust-remote-code"]).unwrap_err();
        assert!(why.contains("--trust-remote-code"), "{why}");
    }
}
