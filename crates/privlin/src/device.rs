//! Device selection (`--device auto|cpu|cuda[:N]`).

use anyhow::{bail, Result};
use tch::Device;

pub fn parse_device(s: &str) -> Result<Device> {
    let l = s.trim().to_ascii_lowercase();
    match l.as_str() {
        "auto" => Ok(Device::cuda_if_available()),
        "cpu" => Ok(Device::Cpu),
        "cuda" | "gpu" => {
            if !tch::Cuda::is_available() {
                bail!("--device cuda: libtorch sees no CUDA device on this machine (use --device cpu or auto)");
            }
            Ok(Device::Cuda(0))
        }
        _ => match l
            .strip_prefix("cuda:")
            .and_then(|n| n.parse::<usize>().ok())
        {
            Some(n) if tch::Cuda::is_available() && (n as i64) < tch::Cuda::device_count() => {
                Ok(Device::Cuda(n))
            }
            Some(n) => bail!("--device cuda:{n}: no such CUDA device"),
            None => bail!("unknown device `{s}` (expected auto, cpu, cuda or cuda:N)"),
        },
    }
}

pub fn describe(d: Device) -> String {
    match d {
        Device::Cpu => format!("cpu ({} threads)", tch::get_num_threads()),
        Device::Cuda(n) => format!("cuda:{n}"),
        other => format!("{other:?}"),
    }
}
