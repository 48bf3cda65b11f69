//! Flags shared by several subcommands.

use anyhow::Result;
use clap::Args;
use tch::Device;

#[derive(Args, Debug, Clone, Default)]
pub struct RuntimeArgs {
    /// auto, cpu, cuda or cuda:N.
    #[arg(long)]
    pub device: Option<String>,
    /// libtorch intra-op threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Apply the thread count and pick the device.
pub fn runtime(device: &str, threads: usize) -> Result<Device> {
    if threads > 0 {
        tch::set_num_threads(threads as i32);
    }
    privlin::device::parse_device(device)
}
