"""Capítulo 04-gpt: o código que o capítulo ensina e os seguintes reutilizam.

ARQUIVO GERADO por `python ferramentas/exportar.py` a partir das células `# exportar` de
`04-gpt/notebook.ipynb`. Não edite à mão: mude o notebook e gere de novo.
"""
import torch
from torch import nn

from llm_do_zero.atencao import MultiHeadAttention


# %% 04-gpt/notebook.ipynb · célula 8
GPT_CONFIG_124M = {
    "vocab_size": 50257,     # tamanho do vocabulário BPE do GPT-2
    "context_length": 1024,  # quantos tokens o modelo enxerga de uma vez
    "emb_dim": 768,          # dimensão dos vetores
    "n_heads": 12,           # cabeças de atenção
    "n_layers": 12,          # blocos transformer
    "drop_rate": 0.1,        # taxa de dropout
    "qkv_bias": False,       # viés nas projeções Q, K, V
}


# %% 04-gpt/notebook.ipynb · célula 19
class LayerNorm(nn.Module):
    """Normaliza cada vetor para média 0 e variância 1, depois aplica escala e deslocamento aprendidos."""

    def __init__(self, emb_dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.scale = nn.Parameter(torch.ones(emb_dim))
        self.shift = nn.Parameter(torch.zeros(emb_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        media = x.mean(dim=-1, keepdim=True)
        variancia = x.var(dim=-1, keepdim=True, unbiased=False)
        return self.scale * (x - media) / torch.sqrt(variancia + self.eps) + self.shift


# %% 04-gpt/notebook.ipynb · célula 23
class GELU(nn.Module):
    """GELU na aproximação por tanh usada pelo GPT-2."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x * (1 + torch.tanh((2.0 / torch.pi) ** 0.5 * (x + 0.044715 * x ** 3)))


# %% 04-gpt/notebook.ipynb · célula 28
class FeedForward(nn.Module):
    """Duas camadas lineares com GELU no meio; a camada escondida é 4x mais larga."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(cfg["emb_dim"], 4 * cfg["emb_dim"]),
            GELU(),
            nn.Linear(4 * cfg["emb_dim"], cfg["emb_dim"]),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


# %% 04-gpt/notebook.ipynb · célula 34
class TransformerBlock(nn.Module):
    """Atenção e feed-forward, cada um com pré-normalização, dropout e atalho (conexão residual)."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.att = MultiHeadAttention(d_in=cfg["emb_dim"], d_out=cfg["emb_dim"],
                                      context_length=cfg["context_length"], dropout=cfg["drop_rate"],
                                      num_heads=cfg["n_heads"], qkv_bias=cfg["qkv_bias"])
        self.ff = FeedForward(cfg)
        self.norm1 = LayerNorm(cfg["emb_dim"])
        self.norm2 = LayerNorm(cfg["emb_dim"])
        self.drop_shortcut = nn.Dropout(cfg["drop_rate"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_shortcut(self.att(self.norm1(x)))   # atenção + atalho
        x = x + self.drop_shortcut(self.ff(self.norm2(x)))    # feed-forward + atalho
        return x


# %% 04-gpt/notebook.ipynb · célula 37
class GPTModel(nn.Module):
    """O GPT: embeddings de token e posição, n_layers blocos transformer, norma final e cabeça de saída.

    Entrada: ids (lote, T) com T <= context_length. Saída: logits (lote, T, vocab_size).
    """

    def __init__(self, cfg: dict):
        super().__init__()
        self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"])
        self.pos_emb = nn.Embedding(cfg["context_length"], cfg["emb_dim"])
        self.drop_emb = nn.Dropout(cfg["drop_rate"])
        self.trf_blocks = nn.Sequential(*[TransformerBlock(cfg) for _ in range(cfg["n_layers"])])
        self.final_norm = LayerNorm(cfg["emb_dim"])
        self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False)

    def forward(self, in_idx: torch.Tensor) -> torch.Tensor:
        _, seq_len = in_idx.shape
        if seq_len > self.pos_emb.num_embeddings:   # só há embeddings de posição para context_length posições
            raise IndexError(f"A entrada tem {seq_len} tokens, mas o modelo aceita no máximo "
                             f"context_length={self.pos_emb.num_embeddings}: use só os últimos tokens, "
                             f"por exemplo idx[:, -{self.pos_emb.num_embeddings}:].")
        tok_embeds = self.tok_emb(in_idx)
        pos_embeds = self.pos_emb(torch.arange(seq_len, device=in_idx.device))
        x = self.drop_emb(tok_embeds + pos_embeds)
        x = self.trf_blocks(x)
        x = self.final_norm(x)
        return self.out_head(x)  # logits: (lote, posições, vocab_size)


# %% 04-gpt/notebook.ipynb · célula 50
def generate_text_simple(model: nn.Module, idx: torch.Tensor, max_new_tokens: int, context_size: int) -> torch.Tensor:
    """Geração gulosa (greedy): a cada passo, acrescenta o token mais provável.

    idx: ids (lote, T) do começo do texto. Devolve (lote, T + max_new_tokens).
    """
    if idx.dim() != 2 or idx.shape[1] == 0:
        raise ValueError(f"idx precisa ter formato (lote, T) com T >= 1; veio {tuple(idx.shape)}. "
                         "Use text_to_token_ids(texto, tokenizer) para montar a entrada.")
    for _ in range(max_new_tokens):
        idx_cond = idx[:, -context_size:]          # só o que cabe no contexto
        with torch.no_grad():
            logits = model(idx_cond)[:, -1, :]     # (lote, vocab_size): só a última posição
        idx_next = torch.argmax(logits, dim=-1, keepdim=True)
        idx = torch.cat((idx, idx_next), dim=1)
    return idx


def text_to_token_ids(text: str, tokenizer) -> torch.Tensor:
    """Texto -> tensor (1, n) de ids, pronto para o modelo."""
    encoded = tokenizer.encode(text, allowed_special={"<|endoftext|>"})
    if not encoded:
        raise ValueError("O texto está vazio: o modelo precisa de pelo menos um token para continuar.")
    return torch.tensor(encoded).unsqueeze(0)


def token_ids_to_text(token_ids: torch.Tensor, tokenizer) -> str:
    """Tensor (1, n) ou (n,) de ids -> texto."""
    return tokenizer.decode(token_ids.squeeze(0).tolist())


# %% 04-gpt/notebook.ipynb · célula 57
def load_weights_into_gpt(gpt: "GPTModel", state_dict: dict) -> "GPTModel":
    """Copia os pesos de um GPT-2 no formato Hugging Face (`wte.weight`, `h.0.attn.c_attn.weight`, ...) para o GPTModel.

    Aceita chaves com ou sem o prefixo `transformer.`. As camadas Conv1D do GPT-2 guardam os pesos transpostos
    em relação a nn.Linear; a projeção QKV vem fundida e é dividida em três. A cabeça de saída reutiliza `wte`
    (pesos amarrados). O modelo precisa de `qkv_bias=True`.
    """
    sd = {k.removeprefix("transformer."): v for k, v in state_dict.items()}

    def pegar(chave: str) -> torch.Tensor:
        if chave not in sd:
            raise KeyError(f"O state dict do GPT-2 não tem a chave {chave!r}: é mesmo um checkpoint do GPT-2?")
        return sd[chave]

    def copiar(destino: torch.Tensor, origem: torch.Tensor, chave: str) -> None:
        if destino.shape != origem.shape:
            raise ValueError(f"Formato incompatível em {chave!r}: o checkpoint tem {tuple(origem.shape)}, "
                             f"o modelo espera {tuple(destino.shape)}. Confira a configuração (emb_dim, "
                             f"n_layers, context_length, vocab_size, qkv_bias=True).")
        with torch.no_grad():
            destino.copy_(origem)

    n_camadas_ckpt = len({k.split(".")[1] for k in sd if k.startswith("h.")})
    if n_camadas_ckpt != len(gpt.trf_blocks):
        raise ValueError(f"O checkpoint tem {n_camadas_ckpt} blocos e o modelo {len(gpt.trf_blocks)} (n_layers).")
    if gpt.trf_blocks[0].att.W_query.bias is None:
        raise ValueError("Os pesos do GPT-2 têm viés em Q, K, V: crie o modelo com qkv_bias=True.")

    copiar(gpt.tok_emb.weight, pegar("wte.weight"), "wte.weight")
    copiar(gpt.pos_emb.weight, pegar("wpe.weight"), "wpe.weight")
    for i, bloco in enumerate(gpt.trf_blocks):
        p = f"h.{i}."
        q_w, k_w, v_w = pegar(p + "attn.c_attn.weight").chunk(3, dim=-1)   # (d, 3d) -> 3 x (d, d)
        q_b, k_b, v_b = pegar(p + "attn.c_attn.bias").chunk(3, dim=-1)
        copiar(bloco.att.W_query.weight, q_w.T, p + "attn.c_attn.weight (Q)")
        copiar(bloco.att.W_key.weight, k_w.T, p + "attn.c_attn.weight (K)")
        copiar(bloco.att.W_value.weight, v_w.T, p + "attn.c_attn.weight (V)")
        copiar(bloco.att.W_query.bias, q_b, p + "attn.c_attn.bias (Q)")
        copiar(bloco.att.W_key.bias, k_b, p + "attn.c_attn.bias (K)")
        copiar(bloco.att.W_value.bias, v_b, p + "attn.c_attn.bias (V)")
        copiar(bloco.att.out_proj.weight, pegar(p + "attn.c_proj.weight").T, p + "attn.c_proj.weight")
        copiar(bloco.att.out_proj.bias, pegar(p + "attn.c_proj.bias"), p + "attn.c_proj.bias")
        copiar(bloco.ff.layers[0].weight, pegar(p + "mlp.c_fc.weight").T, p + "mlp.c_fc.weight")
        copiar(bloco.ff.layers[0].bias, pegar(p + "mlp.c_fc.bias"), p + "mlp.c_fc.bias")
        copiar(bloco.ff.layers[2].weight, pegar(p + "mlp.c_proj.weight").T, p + "mlp.c_proj.weight")
        copiar(bloco.ff.layers[2].bias, pegar(p + "mlp.c_proj.bias"), p + "mlp.c_proj.bias")
        copiar(bloco.norm1.scale, pegar(p + "ln_1.weight"), p + "ln_1.weight")
        copiar(bloco.norm1.shift, pegar(p + "ln_1.bias"), p + "ln_1.bias")
        copiar(bloco.norm2.scale, pegar(p + "ln_2.weight"), p + "ln_2.weight")
        copiar(bloco.norm2.shift, pegar(p + "ln_2.bias"), p + "ln_2.bias")
    copiar(gpt.final_norm.scale, pegar("ln_f.weight"), "ln_f.weight")
    copiar(gpt.final_norm.shift, pegar("ln_f.bias"), "ln_f.bias")
    copiar(gpt.out_head.weight, pegar("wte.weight"), "wte.weight (cabeça de saída amarrada)")
    return gpt
