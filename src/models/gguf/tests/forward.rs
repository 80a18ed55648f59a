//! A plain-Rust llama forward pass over F32 weights read from a GGUF file, written the way llama.cpp's
//! llama graph computes (RMS norm, NORM-type RoPE on adjacent pairs, causal softmax attention, SwiGLU), to
//! check that the tiny model's greedy output is what its construction promises.

use super::f32_data;
use crate::models::gguf::GgufHeader;

/// The model's weights, each in ggml layout (`ne0` contiguous).
pub(super) struct Llama {
    n_embd: usize,
    n_head: usize,
    n_head_kv: usize,
    eps: f32,
    weights: Vec<(String, Vec<f32>)>,
}

fn rms_norm(x: &[f32], w: &[f32], eps: f32) -> Vec<f32> {
    let mean = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    let scale = 1.0 / (mean + eps).sqrt();
    x.iter().zip(w).map(|(v, w)| v * scale * w).collect()
}

/// `W · x` for `W` of ggml dims `[x.len(), n_out]`.
fn mat_vec(w: &[f32], x: &[f32]) -> Vec<f32> {
    w.chunks_exact(x.len()).map(|row| row.iter().zip(x).map(|(a, b)| a * b).sum()).collect()
}

fn rope(x: &mut [f32], head_dim: usize, pos: usize) {
    for head in x.chunks_exact_mut(head_dim) {
        for i in 0..head_dim / 2 {
            let theta = pos as f32 * 10_000f32.powf(-2.0 * i as f32 / head_dim as f32);
            let (x0, x1) = (head[2 * i], head[2 * i + 1]);
            head[2 * i] = x0 * theta.cos() - x1 * theta.sin();
            head[2 * i + 1] = x0 * theta.sin() + x1 * theta.cos();
        }
    }
}

impl Llama {
    /// Loads every tensor of a whole file held in memory.
    pub(super) fn load(bytes: &[u8], h: &GgufHeader) -> Llama {
        let get = |k: &str| h.get(k).and_then(|v| v.as_u64()).unwrap() as usize;
        let eps = match h.get("llama.attention.layer_norm_rms_epsilon") {
            Some(crate::models::gguf::MetaValue::F32(e)) => *e,
            other => panic!("epsilon is {other:?}"),
        };
        Llama {
            n_embd: get("llama.embedding_length"),
            n_head: get("llama.attention.head_count"),
            n_head_kv: get("llama.attention.head_count_kv"),
            eps,
            weights: h.tensors().iter().map(|t| (t.name.clone(), f32_data(bytes, h, &t.name))).collect(),
        }
    }

    fn w(&self, name: &str) -> &[f32] {
        &self.weights.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no {name}")).1
    }

    /// The logits after the last of `tokens`.
    pub(super) fn logits(&self, tokens: &[u32]) -> Vec<f32> {
        let (e, hd) = (self.n_embd, self.n_embd / self.n_head);
        let mut xs: Vec<Vec<f32>> =
            tokens.iter().map(|t| self.w("token_embd.weight")[*t as usize * e..][..e].to_vec()).collect();
        for b in 0.. {
            if self.weights.iter().all(|(n, _)| !n.starts_with(&format!("blk.{b}."))) {
                break;
            }
            let w = |part: &str| self.w(&format!("blk.{b}.{part}.weight"));
            let mut keys = Vec::new();
            let mut values = Vec::new();
            for (pos, x) in xs.iter_mut().enumerate() {
                let xn = rms_norm(x, w("attn_norm"), self.eps);
                let (mut q, mut k) = (mat_vec(w("attn_q"), &xn), mat_vec(w("attn_k"), &xn));
                rope(&mut q, hd, pos);
                rope(&mut k, hd, pos);
                keys.push(k);
                values.push(mat_vec(w("attn_v"), &xn));
                let mut attn = vec![0.0; self.n_head * hd];
                for h in 0..self.n_head {
                    let kv = h / (self.n_head / self.n_head_kv) * hd;
                    let qh = &q[h * hd..][..hd];
                    let scores: Vec<f32> = keys
                        .iter()
                        .map(|k| qh.iter().zip(&k[kv..kv + hd]).map(|(a, b)| a * b).sum::<f32>())
                        .map(|s| s / (hd as f32).sqrt())
                        .collect();
                    let max = scores.iter().copied().fold(f32::MIN, f32::max);
                    let exps: Vec<f32> = scores.iter().map(|s| (s - max).exp()).collect();
                    let total: f32 = exps.iter().sum();
                    for (p, ex) in exps.iter().enumerate() {
                        for i in 0..hd {
                            attn[h * hd + i] += ex / total * values[p][kv + i];
                        }
                    }
                }
                for (xi, a) in x.iter_mut().zip(mat_vec(w("attn_output"), &attn)) {
                    *xi += a;
                }
                let xn = rms_norm(x, w("ffn_norm"), self.eps);
                let (gate, up) = (mat_vec(w("ffn_gate"), &xn), mat_vec(w("ffn_up"), &xn));
                let act: Vec<f32> = gate.iter().zip(&up).map(|(g, u)| g / (1.0 + (-g).exp()) * u).collect();
                for (xi, d) in x.iter_mut().zip(mat_vec(w("ffn_down"), &act)) {
                    *xi += d;
                }
            }
        }
        let last = xs.last().expect("at least one token");
        mat_vec(self.w("output.weight"), &rms_norm(last, self.w("output_norm.weight"), self.eps))
    }

    /// Greedy decoding: `n` tokens after `prompt`.
    pub(super) fn greedy(&self, prompt: &[u32], n: usize) -> Vec<u32> {
        let mut tokens = prompt.to_vec();
        for _ in 0..n {
            let logits = self.logits(&tokens);
            let best = (0..logits.len()).max_by(|a, b| logits[*a].total_cmp(&logits[*b])).unwrap();
            tokens.push(best as u32);
        }
        tokens.split_off(prompt.len())
    }
}
