//! Serves an empty sandbox API server on 127.0.0.1:PORT (first argument,
//! default 6443) and prints a kubeconfig for it, for trying kubectl by hand.

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(6443);
    let server = modelfleet_sandbox::ApiServer::new();
    let serving = server.serve(([127, 0, 0, 1], port).into()).await?;
    println!("{}", serving.kubeconfig_yaml("sandbox"));
    tokio::signal::ctrl_c().await?;
    Ok(())
}
