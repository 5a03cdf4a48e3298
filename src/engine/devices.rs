//! Compute devices: what llama.cpp's backends offer, and which one a model runs on.

use std::fmt;
use std::str::FromStr;

use llama_cpp_2::{LlamaBackendDeviceType, list_llama_ggml_backend_devices};
use llama_cpp_sys_2 as sys;
use serde::Serialize;

use super::backend;
use crate::error::{Error, Result};

/// Where to run the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    /// The first GPU if there is one, else the CPU.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// A GPU: the first one, or the one with this index among the GPUs.
    Gpu(Option<usize>),
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Auto => f.write_str("auto"),
            Device::Cpu => f.write_str("cpu"),
            Device::Gpu(None) => f.write_str("gpu"),
            Device::Gpu(Some(n)) => write!(f, "gpu:{n}"),
        }
    }
}

impl FromStr for Device {
    type Err = String;

    /// Parses `auto`, `cpu`, `gpu` or `gpu:N`.
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Device::Auto),
            "cpu" => Ok(Device::Cpu),
            "gpu" => Ok(Device::Gpu(None)),
            other => other
                .strip_prefix("gpu:")
                .and_then(|n| n.parse().ok())
                .map(|n| Device::Gpu(Some(n)))
                .ok_or_else(|| format!("unknown device {s:?}: use auto, cpu, gpu or gpu:N")),
        }
    }
}

/// The kind of a compute device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    /// A CPU.
    Cpu,
    /// A discrete GPU.
    Gpu,
    /// An integrated GPU.
    IntegratedGpu,
    /// Another accelerator (BLAS, ...).
    Accelerator,
    /// Unknown.
    Unknown,
}

/// A device llama.cpp can run on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DeviceInfo {
    /// ggml's index of the device.
    pub index: usize,
    /// Its name, e.g. `CUDA0`, `Vulkan0`, `CPU`.
    pub name: String,
    /// What it is, e.g. `NVIDIA H100 80GB HBM3`.
    pub description: String,
    /// The backend that drives it, e.g. `CUDA`, `Vulkan`, `CPU`.
    pub backend: String,
    /// Its kind.
    pub kind: DeviceKind,
    /// Total memory, in bytes.
    pub memory_total: u64,
    /// Free memory, in bytes.
    pub memory_free: u64,
    /// What the backend reports about its build, e.g. the CPU instruction sets its kernels
    /// use (`AVX512`, `AVX512_VNNI`, ...): in a portable build, the variant ggml picked.
    pub features: Vec<String>,
}

impl DeviceInfo {
    /// Whether models can be offloaded to it.
    pub fn is_gpu(&self) -> bool {
        matches!(self.kind, DeviceKind::Gpu | DeviceKind::IntegratedGpu)
    }
}

/// Every device of every backend this build has (for portable builds: the modules found).
pub fn devices() -> Vec<DeviceInfo> {
    backend::ensure_initialized();
    list_llama_ggml_backend_devices()
        .into_iter()
        .map(|d| DeviceInfo {
            index: d.index,
            name: d.name,
            description: d.description,
            backend: d.backend,
            kind: match d.device_type {
                LlamaBackendDeviceType::Cpu => DeviceKind::Cpu,
                LlamaBackendDeviceType::Gpu => DeviceKind::Gpu,
                LlamaBackendDeviceType::IntegratedGpu => DeviceKind::IntegratedGpu,
                LlamaBackendDeviceType::Accelerator => DeviceKind::Accelerator,
                LlamaBackendDeviceType::Unknown => DeviceKind::Unknown,
            },
            memory_total: d.memory_total as u64,
            memory_free: d.memory_free as u64,
            features: backend_features(d.index),
        })
        .map(with_cpu_variant)
        .collect()
}

/// Portable builds: names the CPU kernel variant ggml loaded (`variant=zen4`), read from the
/// process's mappings.
#[cfg_attr(not(all(feature = "portable", target_os = "linux")), allow(unused_mut))]
fn with_cpu_variant(mut device: DeviceInfo) -> DeviceInfo {
    #[cfg(all(feature = "portable", target_os = "linux"))]
    if device.kind == DeviceKind::Cpu {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
        let variant = maps
            .lines()
            .filter_map(|l| l.rsplit('/').next())
            .find_map(|f| {
                f.strip_prefix("libggml-cpu-")?
                    .split(".so")
                    .next()
                    .map(str::to_string)
            });
        if let Some(variant) = variant {
            device.features.insert(0, format!("variant={variant}"));
        }
    }
    device
}

/// The `ggml_backend_get_features` list of a device's backend, as `NAME` or `NAME=value`.
fn backend_features(index: usize) -> Vec<String> {
    use std::ffi::CStr;
    // SAFETY: the index comes from ggml's device list; the proc address, when present, has
    // the `ggml_backend_get_features_t` signature and returns an array ended by a null name,
    // valid for the life of the backend.
    unsafe {
        let reg = sys::ggml_backend_dev_backend_reg(sys::ggml_backend_dev_get(index));
        let name = c"ggml_backend_get_features";
        let address = sys::ggml_backend_reg_get_proc_address(reg, name.as_ptr());
        if reg.is_null() || address.is_null() {
            return Vec::new();
        }
        let get: unsafe extern "C" fn(sys::ggml_backend_reg_t) -> *mut sys::ggml_backend_feature =
            std::mem::transmute(address);
        let mut features = Vec::new();
        let mut entry = get(reg);
        while !entry.is_null() && !(*entry).name.is_null() {
            let name = CStr::from_ptr((*entry).name).to_string_lossy();
            let value = if (*entry).value.is_null() {
                String::new()
            } else {
                CStr::from_ptr((*entry).value)
                    .to_string_lossy()
                    .into_owned()
            };
            features.push(if value.is_empty() || value == "1" {
                name.into_owned()
            } else {
                format!("{name}={value}")
            });
            entry = entry.add(1);
        }
        features
    }
}

/// The device a model will use: a GPU, or none for the CPU.
#[derive(Debug, Clone)]
pub(crate) struct Placement {
    /// The GPU, when offloading.
    pub gpu: Option<DeviceInfo>,
    /// Whether the CPU kernels have native BF16 dot products (AVX512-BF16).
    pub cpu_bf16: bool,
}

impl Placement {
    /// ggml's handle of the GPU, for the model parameters.
    pub fn gpu_handle(&self) -> Option<sys::ggml_backend_dev_t> {
        // SAFETY: the index came from ggml's own device list.
        self.gpu
            .as_ref()
            .map(|d| unsafe { sys::ggml_backend_dev_get(d.index) })
    }
}

/// Resolves a device request against the devices present. Asking for a GPU that is not
/// there is an error, never a silent CPU run.
pub(crate) fn place(device: Device) -> Result<Placement> {
    let all = devices();
    let gpus: Vec<&DeviceInfo> = all.iter().filter(|d| d.is_gpu()).collect();
    let gpu = match device {
        Device::Cpu => None,
        Device::Auto => gpus.first().copied().cloned(),
        Device::Gpu(n) => {
            let wanted = n.unwrap_or(0);
            let found = gpus.get(wanted).copied().cloned();
            if found.is_none() {
                let have = if gpus.is_empty() {
                    "this build sees no GPU".to_string()
                } else {
                    format!("it sees {} GPU(s)", gpus.len())
                };
                let devices: Vec<String> = all
                    .iter()
                    .map(|d| format!("{} ({})", d.name, d.description))
                    .collect();
                return Err(Error::InvalidOption(format!(
                    "--device {device} asked for GPU {wanted}, but {have} (devices: {}); build with \
                     --features cuda, metal or vulkan (or portable with a GPU backend module), \
                     or use --device cpu",
                    devices.join(", ")
                )));
            }
            found
        }
    };
    match &gpu {
        Some(d) => tracing::info!(
            "running on {} {} ({}, {} MiB free)",
            d.backend,
            d.name,
            d.description,
            d.memory_free >> 20
        ),
        None => tracing::info!("running on the CPU"),
    }
    let cpu_bf16 = all
        .iter()
        .filter(|d| d.kind == DeviceKind::Cpu)
        .any(|d| d.features.iter().any(|f| f == "AVX512_BF16"));
    Ok(Placement { gpu, cpu_bf16 })
}
