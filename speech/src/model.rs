//! The Whisper network on candle tensors: a convolutional front end and
//! transformer encoder over the mel spectrogram, and a transformer decoder
//! that keeps a key/value cache, so each new token costs one position instead
//! of re-running the whole prefix (candle-transformers' decoder has no cache).
//!
//! Weights come straight from CTranslate2's `model.bin` (see [`crate::ct2`]):
//! fused q|k|v and k|v projections are kept fused, as one matmul each.

use candle_core::{Device, Tensor};

use crate::ct2::Ct2Weights;
use crate::error::SpeechError;
use crate::fastops::{self, QuantizedRows};

type Result<T> = std::result::Result<T, SpeechError>;

/// Sizes read from the weights.
#[derive(Clone, Debug)]
pub struct Dims {
    pub d_model: usize,
    pub heads: usize,
    pub encoder_layers: usize,
    pub decoder_layers: usize,
    pub audio_ctx: usize,
    pub text_ctx: usize,
}

struct Linear {
    /// `[in, out]`, contiguous.
    weight_t: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    fn load(w: &Ct2Weights, prefix: &str, out: usize, inp: usize, dev: &Device) -> Result<Self> {
        let weight = w.tensor(&format!("{prefix}/weight"), &[out, inp], dev)?;
        let bias = match w.index.get(&format!("{prefix}/bias")) {
            Some(_) => Some(w.tensor(&format!("{prefix}/bias"), &[out], dev)?),
            None => None,
        };
        Ok(Linear {
            weight_t: weight.t()?.contiguous()?,
            bias,
        })
    }

    /// `x`: `[n, in]` → `[n, out]`.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = x.matmul(&self.weight_t)?;
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

struct LayerNorm {
    gamma: Tensor,
    beta: Tensor,
}

impl LayerNorm {
    fn load(w: &Ct2Weights, prefix: &str, d: usize, dev: &Device) -> Result<Self> {
        Ok(LayerNorm {
            gamma: w.tensor(&format!("{prefix}/gamma"), &[d], dev)?,
            beta: w.tensor(&format!("{prefix}/beta"), &[d], dev)?,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::ops::layer_norm(x, &self.gamma, &self.beta, 1e-5)
    }
}

struct Ffn {
    norm: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

impl Ffn {
    fn load(w: &Ct2Weights, prefix: &str, d: usize, dev: &Device) -> Result<Self> {
        Ok(Ffn {
            norm: LayerNorm::load(w, &format!("{prefix}/layer_norm"), d, dev)?,
            fc1: Linear::load(w, &format!("{prefix}/linear_0"), 4 * d, d, dev)?,
            fc2: Linear::load(w, &format!("{prefix}/linear_1"), d, 4 * d, dev)?,
        })
    }

    /// Residual feed-forward block.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let h = gelu(&self.fc1.forward(&self.norm.forward(x)?)?)?;
        x + self.fc2.forward(&h)?
    }
}

/// `[t, d]` → `[heads, t, d / heads]`, contiguous.
fn split_heads(x: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
    let (t, d) = x.dims2()?;
    x.reshape((t, heads, d / heads))?
        .transpose(0, 1)?
        .contiguous()
}

/// Scaled dot-product attention over heads split by [`split_heads`];
/// returns `[tq, d]`.
fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
) -> candle_core::Result<Tensor> {
    let (heads, tq, dh) = q.dims3()?;
    let scale = 1.0 / (dh as f64).sqrt();
    let mut scores = (q.matmul(&k.t()?)? * scale)?;
    if let Some(mask) = mask {
        scores = scores.broadcast_add(mask)?;
    }
    let weights = candle_nn::ops::softmax_last_dim(&scores)?;
    weights
        .matmul(v)?
        .transpose(0, 1)?
        .contiguous()?
        .reshape((tq, heads * dh))
}

/// Exact GELU through [`fastops::gelu_erf_in_place`].
fn gelu(x: &Tensor) -> candle_core::Result<Tensor> {
    let mut values = x.flatten_all()?.to_vec1::<f32>()?;
    fastops::gelu_erf_in_place(&mut values);
    Tensor::from_vec(values, x.shape(), x.device())
}

struct SelfAttention {
    norm: LayerNorm,
    qkv: Linear,
    out: Linear,
}

impl SelfAttention {
    fn load(w: &Ct2Weights, prefix: &str, d: usize, dev: &Device) -> Result<Self> {
        Ok(SelfAttention {
            norm: LayerNorm::load(w, &format!("{prefix}/layer_norm"), d, dev)?,
            qkv: Linear::load(w, &format!("{prefix}/linear_0"), 3 * d, d, dev)?,
            out: Linear::load(w, &format!("{prefix}/linear_1"), d, d, dev)?,
        })
    }
}

struct EncoderLayer {
    attn: SelfAttention,
    ffn: Ffn,
}

struct DecoderLayer {
    attn: SelfAttention,
    cross_norm: LayerNorm,
    cross_q: Linear,
    cross_kv: Linear,
    cross_out: Linear,
    ffn: Ffn,
}

/// Whisper: encoder and decoder weights.
pub struct Whisper {
    pub dims: Dims,
    conv1_w: Tensor,
    conv1_b: Tensor,
    conv2_w: Tensor,
    conv2_b: Tensor,
    encoder_pos: Tensor,
    encoder_layers: Vec<EncoderLayer>,
    encoder_norm: LayerNorm,
    embeddings: Tensor,
    /// The tied output projection (the embeddings), int8 rows.
    output: QuantizedRows,
    decoder_pos: Tensor,
    decoder_layers: Vec<DecoderLayer>,
    decoder_norm: LayerNorm,
    device: Device,
}

/// Per-window decoder state: cross-attention keys/values of the audio and
/// the self-attention cache of the tokens seen so far.
pub struct DecoderState {
    cross: Vec<(Tensor, Tensor)>,
    cache: Vec<Option<(Tensor, Tensor)>>,
    pub position: usize,
}

impl Whisper {
    pub fn load(w: &Ct2Weights, device: &Device) -> Result<Self> {
        let heads = w.scalar_i64("decoder/num_heads")? as usize;
        let emb = w
            .index
            .get("decoder/embeddings/weight")
            .ok_or_else(|| SpeechError::corrupt(w.path, "missing decoder/embeddings/weight"))?;
        let (vocab, d_model) = match emb.dims[..] {
            [v, d] => (v, d),
            _ => return Err(SpeechError::corrupt(w.path, "embeddings are not a matrix")),
        };
        if heads == 0 || d_model % heads != 0 {
            return Err(SpeechError::corrupt(
                w.path,
                format!("{heads} heads for d={d_model}"),
            ));
        }
        let count_layers = |side: &str| {
            (0..)
                .take_while(|i| {
                    w.index
                        .get(&format!("{side}/layer_{i}/ffn/linear_0/weight"))
                        .is_some()
                })
                .count()
        };
        let pos_len = |name: &str| w.index.get(name).map(|v| v.dims[0]).unwrap_or(0);
        let dims = Dims {
            d_model,
            heads,
            encoder_layers: count_layers("encoder"),
            decoder_layers: count_layers("decoder"),
            audio_ctx: pos_len("encoder/position_encodings/encodings"),
            text_ctx: pos_len("decoder/position_encodings/encodings"),
        };
        if dims.encoder_layers == 0 || dims.decoder_layers == 0 {
            return Err(SpeechError::corrupt(w.path, "no transformer layers"));
        }
        let d = d_model;
        let dev = device;
        let encoder_layers = (0..dims.encoder_layers)
            .map(|i| {
                let p = format!("encoder/layer_{i}");
                Ok(EncoderLayer {
                    attn: SelfAttention::load(w, &format!("{p}/self_attention"), d, dev)?,
                    ffn: Ffn::load(w, &format!("{p}/ffn"), d, dev)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let decoder_layers = (0..dims.decoder_layers)
            .map(|i| {
                let p = format!("decoder/layer_{i}");
                Ok(DecoderLayer {
                    attn: SelfAttention::load(w, &format!("{p}/self_attention"), d, dev)?,
                    cross_norm: LayerNorm::load(w, &format!("{p}/attention/layer_norm"), d, dev)?,
                    cross_q: Linear::load(w, &format!("{p}/attention/linear_0"), d, d, dev)?,
                    cross_kv: Linear::load(w, &format!("{p}/attention/linear_1"), 2 * d, d, dev)?,
                    cross_out: Linear::load(w, &format!("{p}/attention/linear_2"), d, d, dev)?,
                    ffn: Ffn::load(w, &format!("{p}/ffn"), d, dev)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let embeddings = w.tensor("decoder/embeddings/weight", &[vocab, d], dev)?;
        Ok(Whisper {
            conv1_w: w.tensor("encoder/conv1/weight", &[d, 80, 3], dev)?,
            conv1_b: w.tensor("encoder/conv1/bias", &[d], dev)?,
            conv2_w: w.tensor("encoder/conv2/weight", &[d, d, 3], dev)?,
            conv2_b: w.tensor("encoder/conv2/bias", &[d], dev)?,
            encoder_pos: w.tensor(
                "encoder/position_encodings/encodings",
                &[dims.audio_ctx, d],
                dev,
            )?,
            encoder_layers,
            encoder_norm: LayerNorm::load(w, "encoder/layer_norm", d, dev)?,
            output: QuantizedRows::from_f32(&embeddings.flatten_all()?.to_vec1::<f32>()?, d),
            embeddings,
            decoder_pos: w.tensor(
                "decoder/position_encodings/encodings",
                &[dims.text_ctx, d],
                dev,
            )?,
            decoder_layers,
            decoder_norm: LayerNorm::load(w, "decoder/layer_norm", d, dev)?,
            device: device.clone(),
            dims,
        })
    }

    /// Encodes a mel window `[80][frames]` (frames even, ≤ 3000) into
    /// `[frames / 2, d]` audio features.
    pub fn encode(&self, mel: &[f32], frames: usize) -> Result<Tensor> {
        let mel = Tensor::from_slice(mel, (1, 80, frames), &self.device)?;
        let x = mel
            .conv1d(&self.conv1_w, 1, 1, 1, 1)?
            .broadcast_add(&self.conv1_b.reshape((1, (), 1))?)?;
        let x = gelu(&x)?;
        let x = x
            .conv1d(&self.conv2_w, 1, 2, 1, 1)?
            .broadcast_add(&self.conv2_b.reshape((1, (), 1))?)?;
        let x = gelu(&x)?;
        let x = x.squeeze(0)?.t()?.contiguous()?;
        let positions = x.dim(0)?;
        if positions > self.dims.audio_ctx {
            return Err(SpeechError::Inference(candle_core::Error::Msg(format!(
                "{positions} audio positions > {}",
                self.dims.audio_ctx
            ))));
        }
        let mut x = (x + self.encoder_pos.narrow(0, 0, positions)?)?;
        let heads = self.dims.heads;
        let d = self.dims.d_model;
        for layer in &self.encoder_layers {
            let h = layer.attn.norm.forward(&x)?;
            let qkv = layer.attn.qkv.forward(&h)?;
            let q = split_heads(&qkv.narrow(1, 0, d)?, heads)?;
            let k = split_heads(&qkv.narrow(1, d, d)?, heads)?;
            let v = split_heads(&qkv.narrow(1, 2 * d, d)?, heads)?;
            let a = attention(&q, &k, &v, None)?;
            x = (x + layer.attn.out.forward(&a)?)?;
            x = layer.ffn.forward(&x)?;
        }
        Ok(self.encoder_norm.forward(&x)?)
    }

    /// A fresh decoder state for encoded audio `[positions, d]`.
    pub fn start(&self, audio: &Tensor) -> Result<DecoderState> {
        let d = self.dims.d_model;
        let heads = self.dims.heads;
        let cross = self
            .decoder_layers
            .iter()
            .map(|layer| {
                let kv = layer.cross_kv.forward(audio)?;
                Ok((
                    split_heads(&kv.narrow(1, 0, d)?, heads)?,
                    split_heads(&kv.narrow(1, d, d)?, heads)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(DecoderState {
            cross,
            cache: vec![None; self.decoder_layers.len()],
            position: 0,
        })
    }

    /// Feeds `tokens` after what `state` has seen; returns the logits of
    /// the last `want` positions.
    pub fn decode(
        &self,
        state: &mut DecoderState,
        tokens: &[u32],
        want: usize,
    ) -> Result<Vec<Vec<f32>>> {
        let n = tokens.len();
        if state.position + n > self.dims.text_ctx {
            return Err(SpeechError::Inference(candle_core::Error::Msg(
                "text context exhausted".into(),
            )));
        }
        let ids = Tensor::new(tokens, &self.device)?;
        let mut x = (self.embeddings.index_select(&ids, 0)?
            + self.decoder_pos.narrow(0, state.position, n)?)?;
        let past = state.position;
        let mask = if n > 1 {
            let total = past + n;
            let values: Vec<f32> = (0..n)
                .flat_map(|i| {
                    (0..total).map(move |j| if j > past + i { f32::NEG_INFINITY } else { 0.0 })
                })
                .collect();
            Some(Tensor::from_vec(values, (n, total), &self.device)?)
        } else {
            None
        };
        let heads = self.dims.heads;
        let d = self.dims.d_model;
        for (i, layer) in self.decoder_layers.iter().enumerate() {
            let h = layer.attn.norm.forward(&x)?;
            let qkv = layer.attn.qkv.forward(&h)?;
            let q = split_heads(&qkv.narrow(1, 0, d)?, heads)?;
            let mut k = split_heads(&qkv.narrow(1, d, d)?, heads)?;
            let mut v = split_heads(&qkv.narrow(1, 2 * d, d)?, heads)?;
            if let Some((pk, pv)) = &state.cache[i] {
                k = Tensor::cat(&[pk, &k], 1)?;
                v = Tensor::cat(&[pv, &v], 1)?;
            }
            let a = attention(&q, &k, &v, mask.as_ref())?;
            state.cache[i] = Some((k, v));
            x = (x + layer.attn.out.forward(&a)?)?;

            let h = layer.cross_norm.forward(&x)?;
            let q = split_heads(&layer.cross_q.forward(&h)?, heads)?;
            let (ck, cv) = &state.cross[i];
            let a = attention(&q, ck, cv, None)?;
            x = (x + layer.cross_out.forward(&a)?)?;
            x = layer.ffn.forward(&x)?;
        }
        state.position += n;
        let last = x.narrow(0, n - want.min(n), want.min(n))?;
        let last = self.decoder_norm.forward(&last)?;
        Ok(last
            .to_vec2::<f32>()?
            .iter()
            .map(|hidden| self.output.matvec(hidden))
            .collect())
    }

    /// Drops the cached tokens after `keep` (used to rewind to the prompt).
    pub fn truncate(&self, state: &mut DecoderState, keep: usize) -> Result<()> {
        for entry in state.cache.iter_mut() {
            if let Some((k, v)) = entry {
                *entry = Some((k.narrow(1, 0, keep)?, v.narrow(1, 0, keep)?));
            }
        }
        state.position = keep;
        Ok(())
    }
}
