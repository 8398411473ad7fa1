//! An in-process emulation of the part of the Kubernetes API that modelfleet
//! and `kubectl` use, with simulated GPU and NPU node pools, a scheduler and a
//! kubelet. It is the embedded default cluster of `modelfleet serve` and the
//! harness for end-to-end tests; it is not a Kubernetes distribution.
//!
//! Nothing lives here yet: the sandbox is built by the issue "Sandbox: an
//! in-process Kubernetes API". Until then the crate exports nothing.
