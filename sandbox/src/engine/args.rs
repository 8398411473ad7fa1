//! What a container's command line says about the engine it runs: whether
//! it is vLLM's OpenAI server at all, and the `vllm serve` flags the
//! simulated engine follows. Pure.
//!
//! A container serves when its command and arguments hold `vllm serve`
//! (the operator's single-node pods), when a shell script `exec`s
//! `vllm serve "$@"` with the container's arguments (the leader of a
//! multi-node group), when it runs `vllm.entrypoints.openai.api_server`,
//! or when it has only arguments and runs the `vllm/vllm-openai` image,
//! whose entrypoint is `vllm serve`. Ray workers and everything else do
//! not serve.

use k8s_openapi::api::core::v1::Container;

/// vLLM's own defaults for the flags the simulation reads.
pub const DEFAULT_PORT: u16 = 8000;
pub const DEFAULT_MAX_NUM_SEQS: u32 = 256;
pub const DEFAULT_GPU_MEMORY_UTILIZATION: f64 = 0.9;

/// The `vllm serve` flags the simulated engine follows; every other flag
/// is accepted and ignored.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeArgs {
    /// The positional model (or `--model`): the weights' directory.
    pub model: String,
    /// `--served-model-name`, which takes several; the model when absent.
    pub served_model_names: Vec<String>,
    pub port: u16,
    pub max_model_len: Option<u32>,
    pub max_num_seqs: u32,
    pub tensor_parallel: Option<u32>,
    pub pipeline_parallel: Option<u32>,
    pub gpu_memory_utilization: f64,
    /// `--api-key`; the container's `VLLM_API_KEY` counts too (see
    /// [`EngineSpec`](super::EngineSpec)).
    pub api_key: Option<String>,
}

/// The words after `vllm serve` when `c` runs vLLM's OpenAI server.
pub fn serve_words(c: &Container) -> Option<Vec<&str>> {
    let command: Vec<&str> = c.command.iter().flatten().map(String::as_str).collect();
    let args: Vec<&str> = c.args.iter().flatten().map(String::as_str).collect();
    let words: Vec<&str> = command.iter().chain(&args).copied().collect();
    if let Some(at) = words.windows(2).position(|w| w == ["vllm", "serve"]) {
        return Some(words[at + 2..].to_vec());
    }
    // `sh -c '… exec vllm serve "$@"' name args…`: the arguments are `$@`.
    if command.iter().any(|w| w.contains("vllm serve \"$@\"")) {
        return Some(args);
    }
    if let Some(at) = words
        .iter()
        .position(|w| *w == "vllm.entrypoints.openai.api_server")
    {
        return Some(words[at + 1..].to_vec());
    }
    let image = c.image.as_deref().unwrap_or_default();
    let repository = image.split([':', '@']).next().unwrap_or_default();
    (command.is_empty() && !args.is_empty() && repository.ends_with("vllm/vllm-openai"))
        .then_some(args)
}

/// A flag's canonical name: vLLM takes `--max_model_len` for
/// `--max-model-len`, and a few short aliases.
fn canonical(flag: &str) -> String {
    match flag {
        "-tp" => "--tensor-parallel-size".to_owned(),
        "-pp" => "--pipeline-parallel-size".to_owned(),
        _ => {
            let name = flag.trim_start_matches('-').replace('_', "-");
            format!("--{name}")
        }
    }
}

/// `8192`, `32k` (thousands), `32K` (KiB-style), `1m`, `1M`: the forms
/// vLLM reads for `--max-model-len`.
fn parse_len(text: &str) -> Option<u32> {
    let (digits, multiplier) = match text.char_indices().last()? {
        (at, 'k') => (&text[..at], 1_000),
        (at, 'K') => (&text[..at], 1_024),
        (at, 'm') => (&text[..at], 1_000_000),
        (at, 'M') => (&text[..at], 1_048_576),
        _ => (text, 1),
    };
    let value: f64 = digits.parse().ok()?;
    let len = (value * f64::from(multiplier)).round();
    (len >= 1.0 && len <= f64::from(u32::MAX)).then_some(len as u32)
}

/// Reads the words after `vllm serve`. The last occurrence of a flag
/// wins, as with argparse; a value that does not parse keeps vLLM's
/// default (where vLLM would refuse to start).
pub fn parse(words: &[&str]) -> ServeArgs {
    let mut model = words
        .first()
        .filter(|w| !w.starts_with('-'))
        .map(|w| (*w).to_owned());
    let mut args = ServeArgs {
        model: String::new(),
        served_model_names: Vec::new(),
        port: DEFAULT_PORT,
        max_model_len: None,
        max_num_seqs: DEFAULT_MAX_NUM_SEQS,
        tensor_parallel: None,
        pipeline_parallel: None,
        gpu_memory_utilization: DEFAULT_GPU_MEMORY_UTILIZATION,
        api_key: None,
    };
    let mut at = 0;
    while at < words.len() {
        let word = words[at];
        at += 1;
        if !word.starts_with('-') {
            continue;
        }
        let (flag, inline) = match word.split_once('=') {
            Some((flag, value)) => (canonical(flag), Some(value)),
            None => (canonical(word), None),
        };
        if flag == "--served-model-name" {
            let mut names: Vec<String> = inline.map(str::to_owned).into_iter().collect();
            while inline.is_none() && at < words.len() && !words[at].starts_with('-') {
                names.push(words[at].to_owned());
                at += 1;
            }
            if !names.is_empty() {
                args.served_model_names = names;
            }
            continue;
        }
        let takes_value = matches!(
            flag.as_str(),
            "--model"
                | "--port"
                | "--max-model-len"
                | "--max-num-seqs"
                | "--tensor-parallel-size"
                | "--pipeline-parallel-size"
                | "--gpu-memory-utilization"
                | "--api-key"
        );
        if !takes_value {
            continue;
        }
        let value = match inline {
            Some(value) => value,
            None if at < words.len() => {
                at += 1;
                words[at - 1]
            }
            None => continue,
        };
        match flag.as_str() {
            "--model" => model = Some(value.to_owned()),
            "--port" => args.port = value.parse().unwrap_or(args.port),
            "--max-model-len" => args.max_model_len = parse_len(value).or(args.max_model_len),
            "--max-num-seqs" => {
                args.max_num_seqs = value
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .unwrap_or(args.max_num_seqs);
            }
            "--tensor-parallel-size" => {
                args.tensor_parallel = value.parse().ok().filter(|n| *n > 0)
            }
            "--pipeline-parallel-size" => {
                args.pipeline_parallel = value.parse().ok().filter(|n| *n > 0);
            }
            "--gpu-memory-utilization" => {
                args.gpu_memory_utilization = value
                    .parse()
                    .ok()
                    .filter(|u: &f64| *u > 0.0 && *u <= 1.0)
                    .unwrap_or(args.gpu_memory_utilization);
            }
            "--api-key" => args.api_key = Some(value.to_owned()),
            _ => {}
        }
    }
    args.model = model.unwrap_or_default();
    if args.served_model_names.is_empty() {
        args.served_model_names = vec![args.model.clone()];
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(command: &[&str], args: &[&str]) -> Container {
        let own = |w: &[&str]| (!w.is_empty()).then(|| w.iter().map(|s| (*s).to_owned()).collect());
        Container {
            name: "engine".to_owned(),
            image: Some("vllm/vllm-openai:v0.13.0".to_owned()),
            command: own(command),
            args: own(args),
            ..Container::default()
        }
    }

    #[test]
    fn servers_and_leaders_serve_workers_do_not() {
        let serve = ["/models/m", "--served-model-name", "m", "--port", "8000"];
        let server = container(&["vllm", "serve"], &serve);
        assert_eq!(serve_words(&server).unwrap(), serve);
        let script = "set -eu\nray start --head\nexec vllm serve \"$@\"";
        let leader = container(&["/bin/sh", "-c", script, "leader"], &serve);
        assert_eq!(serve_words(&leader).unwrap(), serve);
        let worker = container(&["/bin/sh", "-c", "exec ray start --block"], &[]);
        assert_eq!(serve_words(&worker), None);
        // The image's entrypoint is `vllm serve`.
        assert_eq!(serve_words(&container(&[], &serve)).unwrap(), serve);
        assert_eq!(serve_words(&container(&[], &[])), None);
        let python = container(
            &["python3", "-m", "vllm.entrypoints.openai.api_server"],
            &["--model", "/models/m"],
        );
        assert_eq!(parse(&serve_words(&python).unwrap()).model, "/models/m");
    }

    #[test]
    fn the_flags_the_engine_follows_are_read_as_vllm_reads_them() {
        let words = [
            "/models/llama",
            "--served-model-name",
            "llama",
            "chat",
            "--port=9000",
            "--tensor-parallel-size",
            "4",
            "-pp",
            "2",
            "--max_model_len",
            "32k",
            "--gpu-memory-utilization",
            "0.85",
            "--enforce-eager",
            "--max-num-seqs",
            "64",
            "--max-num-seqs",
            "32",
            "--api-key",
            "secret",
        ];
        let args = parse(&words);
        assert_eq!(args.model, "/models/llama");
        assert_eq!(args.served_model_names, ["llama", "chat"]);
        assert_eq!(args.port, 9000);
        assert_eq!(args.tensor_parallel, Some(4));
        assert_eq!(args.pipeline_parallel, Some(2));
        assert_eq!(args.max_model_len, Some(32_000));
        assert_eq!(args.max_num_seqs, 32, "the last occurrence wins");
        assert_eq!(args.api_key.as_deref(), Some("secret"));
        assert!((args.gpu_memory_utilization - 0.85).abs() < 1e-9);

        let bare = parse(&["/models/m"]);
        assert_eq!(bare.served_model_names, ["/models/m"]);
        assert_eq!(bare.port, DEFAULT_PORT);
        assert_eq!(bare.max_num_seqs, DEFAULT_MAX_NUM_SEQS);
        assert_eq!(bare.max_model_len, None);
        assert_eq!(parse_len("32K"), Some(32_768));
        assert_eq!(parse_len("1m"), Some(1_000_000));
        assert_eq!(parse_len("x"), None);
    }
}
