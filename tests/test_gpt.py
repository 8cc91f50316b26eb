"""Testes do GPT do capítulo 04: peças contra o PyTorch, contagens e igualdade com o GPT-2 da Hugging Face."""
import os

import pytest
import tiktoken
import torch
from torch import nn

from llm_do_zero.atencao import MultiHeadAttention
from llm_do_zero.gpt import (
    apply_rope, FeedForward, GELU, generate_text_simple, GPT_CONFIG_124M, GPTModel, GroupedQueryAttention,
    init_gpt2_weights, LayerNorm, load_weights_into_gpt, RMSNorm, rope_angles, SwiGLU, text_to_token_ids,
    token_ids_to_text, TransformerBlock,
)

MINI = {"vocab_size": 97, "context_length": 16, "emb_dim": 32, "n_heads": 4, "n_layers": 2,
        "drop_rate": 0.0, "qkv_bias": False}


# ---------------------------------------------------------------- peças
def test_layernorm_igual_ao_pytorch():
    torch.manual_seed(0)
    nossa, referencia = LayerNorm(64), nn.LayerNorm(64, eps=1e-5)
    with torch.no_grad():
        nossa.scale.normal_()
        nossa.shift.normal_()
        referencia.weight.copy_(nossa.scale)
        referencia.bias.copy_(nossa.shift)
        x = 5 * torch.randn(3, 7, 64) - 2
        assert (nossa(x) - referencia(x)).abs().max().item() <= 1e-5
    assert [n for n, _ in nossa.named_parameters()] == ["scale", "shift"]


def test_layernorm_normaliza():
    x = torch.randn(4, 10, 128) * 7 + 3
    y = LayerNorm(128)(x).detach()
    assert y.mean(dim=-1).abs().max() < 1e-5
    assert (y.var(dim=-1, unbiased=False) - 1).abs().max() < 1e-3


def test_gelu_igual_ao_pytorch():
    x = torch.linspace(-10, 10, 2001)
    assert (GELU()(x) - nn.GELU(approximate="tanh")(x)).abs().max().item() <= 1e-6
    assert (GELU()(x) - nn.GELU()(x)).abs().max().item() <= 1e-3   # perto da GELU exata


def test_feedforward_e_bloco_preservam_formato():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 32)
    ff = FeedForward(MINI)
    assert ff.layers[0].out_features == 4 * 32
    assert ff(x).shape == x.shape
    assert TransformerBlock(MINI)(x).shape == x.shape


# ---------------------------------------------------------------- contagens
def _modelo_meta(cfg):
    with torch.device("meta"):
        return GPTModel(cfg)


def test_contagem_de_parametros_124m():
    modelo = _modelo_meta(GPT_CONFIG_124M)
    total = sum(p.numel() for p in modelo.parameters())
    assert total == 163_009_536
    assert total - modelo.out_head.weight.numel() == 124_412_160
    bloco = sum(p.numel() for p in modelo.trf_blocks[0].parameters())
    assert bloco == 7_085_568


def test_contagem_com_qkv_bias_e_pesos_amarrados():
    cfg = {**GPT_CONFIG_124M, "qkv_bias": True}
    modelo = _modelo_meta(cfg)
    assert sum(p.numel() for p in modelo.parameters()) == 163_009_536 + 12 * 3 * 768
    modelo.out_head.weight = modelo.tok_emb.weight
    assert sum(p.numel() for p in modelo.parameters()) == 124_412_160 + 12 * 3 * 768


def test_nomes_dos_modulos():
    modelo = GPTModel(MINI)
    nomes = set(dict(modelo.named_parameters()))
    for nome in ("tok_emb.weight", "pos_emb.weight", "final_norm.scale", "final_norm.shift", "out_head.weight",
                 "trf_blocks.0.att.W_query.weight", "trf_blocks.0.att.W_key.weight",
                 "trf_blocks.0.att.W_value.weight", "trf_blocks.0.att.out_proj.weight",
                 "trf_blocks.1.ff.layers.0.weight", "trf_blocks.1.ff.layers.2.bias",
                 "trf_blocks.1.norm1.scale", "trf_blocks.1.norm2.shift"):
        assert nome in nomes, nome
    assert not any("mask" in k for k in modelo.state_dict())


def test_gptmodel_formato_e_contexto():
    torch.manual_seed(0)
    modelo = GPTModel(MINI).eval()
    ids = torch.randint(0, MINI["vocab_size"], (3, 16))
    assert modelo(ids).shape == (3, 16, MINI["vocab_size"])
    with pytest.raises(IndexError, match="context_length=16"):   # o capítulo 08 captura IndexError
        modelo(torch.randint(0, MINI["vocab_size"], (1, 17)))


# ---------------------------------------------------------------- geração
def test_generate_text_simple_e_gulosa_e_corta_o_contexto():
    torch.manual_seed(0)
    modelo = GPTModel(MINI).eval()
    inicio = torch.randint(0, MINI["vocab_size"], (2, 20))        # maior que o contexto de 16
    saida = generate_text_simple(modelo, inicio, max_new_tokens=4, context_size=MINI["context_length"])
    assert saida.shape == (2, 24)
    assert torch.equal(saida[:, :20], inicio)
    atual = inicio
    for passo in range(4):
        with torch.no_grad():
            esperado = modelo(atual[:, -16:])[:, -1].argmax(dim=-1)
        assert torch.equal(saida[:, 20 + passo], esperado)
        atual = saida[:, :21 + passo]


def test_generate_text_simple_recusa_entrada_vazia():
    modelo = GPTModel(MINI).eval()
    with pytest.raises(ValueError, match="T >= 1"):
        generate_text_simple(modelo, torch.zeros(1, 0, dtype=torch.long), 3, 16)


def test_texto_ids_ida_e_volta():
    if not os.environ.get("TIKTOKEN_CACHE_DIR"):
        pytest.skip("sem TIKTOKEN_CACHE_DIR: o tokenizador do GPT-2 precisaria da internet")
    tokenizer = tiktoken.get_encoding("gpt2")
    ids = text_to_token_ids("Capitu tinha olhos de ressaca<|endoftext|>", tokenizer)
    assert ids.shape == (1, 12) and ids.dtype == torch.long
    assert ids[0, :4].tolist() == [15610, 34272, 19783, 3099]
    assert ids[0, -1].item() == 50256
    assert token_ids_to_text(ids, tokenizer) == "Capitu tinha olhos de ressaca<|endoftext|>"
    assert token_ids_to_text(ids[0], tokenizer) == "Capitu tinha olhos de ressaca<|endoftext|>"
    with pytest.raises(ValueError, match="vazio"):
        text_to_token_ids("", tokenizer)


# ---------------------------------------------------------------- GPT-2 da Hugging Face
CONFIGS_HF = [
    {"vocab_size": 97, "context_length": 32, "emb_dim": 48, "n_heads": 4, "n_layers": 2},
    {"vocab_size": 211, "context_length": 24, "emb_dim": 64, "n_heads": 8, "n_layers": 3},
    {"vocab_size": 50, "context_length": 16, "emb_dim": 32, "n_heads": 1, "n_layers": 1},
]


def _gpt2_hf(c, seed=0):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(seed)
    config = transformers.GPT2Config(
        vocab_size=c["vocab_size"], n_positions=c["context_length"], n_embd=c["emb_dim"], n_layer=c["n_layers"],
        n_head=c["n_heads"], resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, layer_norm_epsilon=1e-5,
        activation_function="gelu_new", bos_token_id=0, eos_token_id=0,
    )
    modelo = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():   # vieses e LayerNorms não triviais, para o teste enxergar trocas
        for nome, p in modelo.named_parameters():
            if nome.endswith("bias") or ".ln_" in nome:
                p.add_(0.1 * torch.randn_like(p))
    return modelo


def _nosso(c):
    return GPTModel({**c, "drop_rate": 0.0, "qkv_bias": True}).eval()


@pytest.mark.parametrize("c", CONFIGS_HF, ids=lambda c: f"d{c['emb_dim']}-h{c['n_heads']}-L{c['n_layers']}")
@pytest.mark.parametrize("prefixo", [True, False], ids=["com-transformer.", "sem-prefixo"])
def test_logits_iguais_ao_gpt2_da_hugging_face(c, prefixo):
    hf = _gpt2_hf(c)
    state_dict = hf.state_dict() if prefixo else hf.transformer.state_dict()
    assert any(k.startswith("transformer.") for k in state_dict) == prefixo
    nosso = load_weights_into_gpt(_nosso(c), state_dict)
    ids = torch.randint(0, c["vocab_size"], (2, c["context_length"]), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        esperado, obtido = hf(ids).logits, nosso(ids)
    assert obtido.shape == esperado.shape
    assert (obtido - esperado).abs().max().item() <= 1e-4
    assert torch.equal(nosso.out_head.weight, nosso.tok_emb.weight)


def test_gpt2_salvo_em_safetensors(tmp_path):
    from safetensors.torch import load_file

    c = CONFIGS_HF[0]
    hf = _gpt2_hf(c, seed=3)
    hf.save_pretrained(tmp_path)
    state_dict = load_file(str(tmp_path / "model.safetensors"))
    nosso = load_weights_into_gpt(_nosso(c), state_dict)
    ids = torch.randint(0, c["vocab_size"], (1, 20), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert (nosso(ids) - hf(ids).logits).abs().max().item() <= 1e-4


def test_ignora_buffers_extras_do_checkpoint_original():
    """O model.safetensors da OpenAI traz `h.N.attn.bias` (a máscara causal): não pode atrapalhar."""
    c = CONFIGS_HF[0]
    state_dict = dict(_gpt2_hf(c).transformer.state_dict())
    t = c["context_length"]
    for i in range(c["n_layers"]):
        state_dict[f"h.{i}.attn.bias"] = torch.tril(torch.ones(1, 1, t, t))
    load_weights_into_gpt(_nosso(c), state_dict)


def test_formato_errado_da_erro_que_nomeia_a_chave():
    c = CONFIGS_HF[0]
    state_dict = dict(_gpt2_hf(c).state_dict())
    state_dict["transformer.h.1.mlp.c_fc.weight"] = torch.zeros(c["emb_dim"], 3 * c["emb_dim"])
    with pytest.raises(ValueError, match=r"Formato incompatível em 'h\.1\.mlp\.c_fc\.weight'"):
        load_weights_into_gpt(_nosso(c), state_dict)


def test_outros_erros_em_portugues():
    c = CONFIGS_HF[0]
    state_dict = dict(_gpt2_hf(c).state_dict())
    with pytest.raises(ValueError, match="qkv_bias=True"):
        load_weights_into_gpt(GPTModel({**c, "drop_rate": 0.0, "qkv_bias": False}), state_dict)
    with pytest.raises(ValueError, match="n_layers"):
        load_weights_into_gpt(_nosso({**c, "n_layers": 3}), state_dict)
    with pytest.raises(ValueError, match="'wpe.weight'"):
        load_weights_into_gpt(_nosso({**c, "context_length": 64}), state_dict)
    del state_dict["transformer.ln_f.bias"]
    with pytest.raises(KeyError, match="ln_f.bias"):
        load_weights_into_gpt(_nosso(c), state_dict)


# ---------------------------------------------------------------- inicialização do GPT-2
def test_init_gpt2_weights_segue_a_receita():
    cfg = {**MINI, "vocab_size": 500, "emb_dim": 64, "n_layers": 3, "qkv_bias": True}
    torch.manual_seed(0)
    modelo = GPTModel(cfg)
    with torch.no_grad():
        modelo.final_norm.scale.fill_(3.0)
    assert init_gpt2_weights(modelo) is modelo
    residuais = {f"trf_blocks.{i}.{n}.weight" for i in range(3) for n in ("att.out_proj", "ff.layers.2")}
    for nome, p in modelo.named_parameters():
        if nome.endswith("bias") or nome.endswith("shift"):
            assert torch.count_nonzero(p) == 0, nome
        elif nome.endswith("scale"):
            assert torch.equal(p, torch.ones_like(p)), nome
        else:
            alvo = 0.02 / (2 * 3) ** 0.5 if nome in residuais else 0.02
            assert abs(p.std().item() - alvo) < 0.1 * alvo, nome
            assert abs(p.mean().item()) < 0.2 * alvo, nome
    sem_escala = init_gpt2_weights(GPTModel(cfg), scale_residual=False)
    assert abs(sem_escala.trf_blocks[0].att.out_proj.weight.std().item() - 0.02) < 0.002


def test_gptmodel_continua_com_a_inicializacao_padrao():
    """Os capítulos 05-08 dependem da inicialização padrão: init_gpt2_weights só age quando chamada."""
    torch.manual_seed(0)
    modelo = GPTModel({**MINI, "vocab_size": 2000, "emb_dim": 64})
    assert abs(modelo.tok_emb.weight.std().item() - 1.0) < 0.05               # nn.Embedding: N(0, 1)
    limite = 1 / 64 ** 0.5                                                     # nn.Linear: U(-1/√entrada, ...)
    assert modelo.out_head.weight.abs().max().item() <= limite


# ---------------------------------------------------------------- peças dos modelos de hoje
def test_rmsnorm_igual_a_formula_e_ao_pytorch():
    torch.manual_seed(0)
    norma = RMSNorm(48, eps=1e-6)
    with torch.no_grad():
        norma.scale.normal_()
        x = 4 * torch.randn(3, 5, 48) + 2
        formula = norma.scale * x / torch.sqrt((x ** 2).mean(dim=-1, keepdim=True) + 1e-6)
        assert (norma(x) - formula).abs().max().item() <= 1e-6
        if hasattr(nn, "RMSNorm"):
            referencia = nn.RMSNorm(48, eps=1e-6)
            referencia.weight.copy_(norma.scale)
            assert (norma(x) - referencia(x)).abs().max().item() <= 1e-5
    assert [n for n, _ in norma.named_parameters()] == ["scale"]
    y = RMSNorm(48)(x).detach()
    assert ((y ** 2).mean(dim=-1) - 1).abs().max() < 1e-4   # com escala 1, a RMS da saída é 1


def test_swiglu_igual_a_formula():
    torch.manual_seed(0)
    ff = SwiGLU(emb_dim=32, hidden_dim=80)
    x = torch.randn(2, 7, 32)
    with torch.no_grad():
        a, b = x @ ff.fc1.weight.T, x @ ff.fc2.weight.T
        esperado = (a * torch.sigmoid(a) * b) @ ff.fc3.weight.T
        assert ff(x).shape == (2, 7, 32)
        assert (ff(x) - esperado).abs().max().item() <= 1e-5
    assert sum(p.numel() for p in ff.parameters()) == 3 * 32 * 80


def _rope_por_matrizes(x, posicoes, base=10_000.0):
    """Referência: para cada posição, uma matriz bloco-diagonal de rotações 2x2 aplicada ao vetor."""
    d = x.shape[-1]
    saida = torch.empty_like(x)
    for t, p in enumerate(posicoes):
        rotacao = torch.zeros(d, d, dtype=torch.float64)
        for i in range(d // 2):
            angulo = p * base ** (-2 * i / d)
            c, s = torch.cos(torch.tensor(angulo)), torch.sin(torch.tensor(angulo))
            rotacao[2 * i:2 * i + 2, 2 * i:2 * i + 2] = torch.tensor([[c, -s], [s, c]])
        saida[..., t, :] = (x[..., t, :].double() @ rotacao.T).to(x.dtype)
    return saida


def test_rope_igual_a_rotacao_de_pares():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 9, 16)
    angulos = rope_angles(16, 9)
    assert angulos.shape == (9, 8)
    assert (apply_rope(x, angulos) - _rope_por_matrizes(x, range(9))).abs().max().item() <= 1e-5
    posicoes = [40, 3, 17]       # posições quaisquer, pelas linhas da tabela
    y = apply_rope(x[..., :3, :], rope_angles(16, 64)[posicoes])
    assert (y - _rope_por_matrizes(x[..., :3, :], posicoes)).abs().max().item() <= 1e-4
    complexo = torch.view_as_complex(x.reshape(2, 3, 9, 8, 2)) * torch.polar(torch.ones_like(angulos), angulos)
    assert (apply_rope(x, angulos) - torch.view_as_real(complexo).flatten(-2)).abs().max().item() <= 1e-5


def test_rope_preserva_norma_e_so_enxerga_a_distancia():
    torch.manual_seed(0)
    angulos = rope_angles(32, 200)
    x = torch.randn(4, 200, 32)
    assert ((apply_rope(x, angulos).norm(dim=-1) - x.norm(dim=-1)).abs().max().item()) <= 1e-4
    q, k = torch.randn(1, 32), torch.randn(1, 32)

    def escore(m, n):
        return (apply_rope(q, angulos[[m]]) @ apply_rope(k, angulos[[n]]).T).item()

    for m, n in [(5, 2), (50, 47), (199, 196)]:
        assert escore(m, n) == pytest.approx(escore(3, 0), abs=1e-4)
    assert escore(9, 2) != pytest.approx(escore(3, 0), abs=1e-2)
    with pytest.raises(ValueError, match="par"):
        rope_angles(15, 4)
    with pytest.raises(ValueError, match="angles"):
        apply_rope(x, angulos[:10])


def test_gqa_com_um_grupo_por_cabeca_e_a_atencao_multicabeca():
    torch.manual_seed(0)
    mha = MultiHeadAttention(d_in=24, d_out=32, context_length=12, dropout=0.0, num_heads=4, qkv_bias=True)
    gqa = GroupedQueryAttention(d_in=24, d_out=32, context_length=12, dropout=0.0, num_heads=4, num_kv_groups=4,
                                qkv_bias=True)
    gqa.load_state_dict(mha.state_dict())
    x = torch.randn(3, 12, 24)
    with torch.no_grad():
        assert (gqa(x) - mha(x)).abs().max().item() <= 1e-6


@pytest.mark.parametrize("grupos", [1, 2])
def test_gqa_igual_a_sdpa_com_k_e_v_repetidos(grupos):
    torch.manual_seed(0)
    gqa = GroupedQueryAttention(d_in=16, d_out=16, context_length=10, dropout=0.0, num_heads=4,
                                num_kv_groups=grupos)
    assert gqa.W_key.weight.shape == (grupos * 4, 16)
    x = torch.randn(2, 10, 16)
    with torch.no_grad():
        q = gqa.W_query(x).view(2, 10, 4, 4).transpose(1, 2)
        k = gqa.W_key(x).view(2, 10, grupos, 4).transpose(1, 2)
        v = gqa.W_value(x).view(2, 10, grupos, 4).transpose(1, 2)
        cabeca_para_grupo = torch.arange(4) // (4 // grupos)   # cabeças vizinhas dividem o mesmo grupo
        contexto = nn.functional.scaled_dot_product_attention(q, k[:, cabeca_para_grupo], v[:, cabeca_para_grupo],
                                                              is_causal=True)
        esperado = gqa.out_proj(contexto.transpose(1, 2).reshape(2, 10, 16))
        assert (gqa(x) - esperado).abs().max().item() <= 1e-5
    with pytest.raises(ValueError, match="num_kv_groups"):
        GroupedQueryAttention(16, 16, 10, 0.0, num_heads=4, num_kv_groups=3)
