//! Why a weight file cannot become a network's weights ([`WeightsError`]): a file
//! kiln cannot read ([`Unreadable`]), a tensor whose data cannot be read
//! ([`ReadError`]), tensors that do not fit, or values that cannot be served.

use burn::store::SafetensorsStoreError;
use burn::store::burn_pack;
use burn::store::pytorch_reader::PytorchError;

use crate::model::finite::NonFinite;
use crate::model::sequential::BuildError;
use crate::model::sequential::mismatch::HeaderMismatch;

/// Why a weight file cannot become a network's weights.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// Not a weight file kiln reads, or one its reader gives up on.
    #[error(transparent)]
    Unreadable(#[from] Unreadable),
    /// The file's tensors do not match the network's (every problem listed).
    #[error(transparent)]
    Mismatch(#[from] HeaderMismatch),
    /// The tensors to read expand to more bytes than the import allows.
    #[error(
        "its tensors expand to {needed} bytes when read, over this import's budget of {budget} bytes (the network's parameters at 8 bytes each)"
    )]
    OverBudget { needed: u64, budget: u64 },
    /// Reading one tensor's data failed.
    #[error("tensor {name}: {reason}")]
    Read { name: String, reason: ReadError },
    /// A tensor holds NaN or infinite values.
    #[error("tensor {name} holds {found}: weights must be finite numbers")]
    NonFinite { name: String, found: NonFinite },
    /// The matched tensors did not build the network (boxed: it names a layer and
    /// its shapes, and errors stay small).
    #[error(transparent)]
    Build(Box<BuildError>),
    /// Building the network panicked (a Burn check kiln's own checks missed).
    #[error("building the network failed")]
    BuildPanicked,
}

impl From<BuildError> for WeightsError {
    fn from(e: BuildError) -> Self {
        Self::Build(Box::new(e))
    }
}

/// A file that is not a weight file kiln reads.
#[derive(Debug, thiserror::Error)]
pub enum Unreadable {
    #[error("cannot open it: {0}")]
    Open(#[source] std::io::Error),
    #[error("cannot read it: {0}")]
    Read(#[source] std::io::Error),
    /// Its first bytes are neither a zip archive, a pickle nor safetensors.
    #[error("it is neither a PyTorch file (torch.save: a zip archive or a pickle) nor safetensors")]
    UnknownFormat,
    #[error("not a readable PyTorch file: {0}")]
    Pytorch(#[source] PytorchError),
    #[error("not a readable safetensors file: {0}")]
    Safetensors(#[source] SafetensorsStoreError),
    /// A quantized safetensors tensor (name quoted in part if long).
    #[error("tensor {}: quantized tensors are not supported", crate::quote::bare(.0))]
    Quantized(String),
    /// The reader panicked on the file.
    #[error("the file is malformed (the reader gave up on it)")]
    Malformed,
}

/// Why one tensor's data could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file's index names it but holds no such tensor.
    #[error("it is not in the file")]
    Absent,
    /// The PyTorch reader failed.
    #[error("{0}")]
    Pytorch(#[from] std::io::Error),
    /// The safetensors store failed.
    #[error("{0}")]
    Safetensors(#[from] SafetensorsStoreError),
    /// The tensor's bytes could not be taken from the safetensors store.
    #[error("{0}")]
    Bytes(#[from] burn_pack::Error),
    /// The reader panicked on the tensor.
    #[error("the file is malformed (the reader gave up on it)")]
    Malformed,
    /// The data read is not as long as the header said.
    #[error("{read} bytes were read where its header says {header}")]
    Length { read: u64, header: u64 },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_as_before() {
        let e = WeightsError::Read {
            name: "fc1.weight".into(),
            reason: ReadError::Length {
                read: 8,
                header: 12,
            },
        };
        assert_eq!(
            e.to_string(),
            "tensor fc1.weight: 8 bytes were read where its header says 12"
        );
        let long = "x".repeat(500);
        let e = WeightsError::from(Unreadable::Quantized(long));
        assert!(e.to_string().contains("(500 bytes in all)"), "{e}");
        assert!(
            e.to_string()
                .ends_with("quantized tensors are not supported"),
            "{e}"
        );
    }
}
