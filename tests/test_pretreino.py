"""Testes do capítulo 05 (pré-treino): perda, geração, checkpoints, pesos do GPT-2 e modelo base.

Tudo roda offline e em segundos: modelos minúsculos, um `model.safetensors` escrito aqui no formato do
Hugging Face e um pré-treino de 2 segundos. Arquivos vão para pastas temporárias (LLM_CACHE_DIR, LLM_ARTEFATOS).
"""
import json
import math
import time
from pathlib import Path

import pytest
import torch

from llm_do_zero import estatistica, pretreino
from llm_do_zero.oficina import DownloadError
from llm_do_zero.estatistica import load_text
from llm_do_zero.gpt import generate_text_simple, GPTModel, load_weights_into_gpt
from llm_do_zero.tokens import course_tokenizer, HELD_OUT_BOOKS
from llm_do_zero.oficina import sha256_of
from llm_do_zero.pretreino import (
    base_checkpoint_path, best_bigram_k, bigram_loss, bigram_loss_on_windows, bits_per_char, calc_loss_batch,
    calc_loss_loader, COURSE_BASE_FILE, course_base_dir, download_gpt2_weights, generate, gpt2_config,
    load_base_model, load_checkpoint, load_course_base_model, load_gpt2, load_pretraining_texts, save_checkpoint,
    save_course_base_model, tokenizer_from_state, tokenizer_state, train_loop, train_model_simple, TRAIN_BOOKS,
    unigram_loss, warmup_cosine_lr,
)

MINI = {"vocab_size": 50, "context_length": 8, "emb_dim": 16, "n_heads": 2, "n_layers": 1,
        "drop_rate": 0.0, "qkv_bias": False}


@pytest.fixture
def mini():
    torch.manual_seed(0)
    return GPTModel(MINI).eval()


@pytest.fixture
def pastas(tmp_path, monkeypatch):
    """Cache, artefatos e modelo base do curso em pastas temporárias; sem espelho, a menos que o teste ponha um."""
    monkeypatch.setenv("LLM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("LLM_ARTEFATOS", str(tmp_path / "artefatos"))
    monkeypatch.setattr(pretreino, "course_base_dir", lambda: tmp_path / "modelo-base")
    return tmp_path


def arquivos_em(pasta):
    return sorted(p for p in pasta.rglob("*") if p.is_file()) if pasta.exists() else []


# ---------------------------------------------------------------- perda

def test_calc_loss_batch_e_a_media_de_menos_log_prob_do_alvo(mini):
    x = torch.randint(0, MINI["vocab_size"], (3, 6))
    y = torch.randint(0, MINI["vocab_size"], (3, 6))
    with torch.no_grad():
        probas = torch.softmax(mini(x), dim=-1)
        manual = -torch.log(probas.gather(-1, y.unsqueeze(-1))).mean()
        perda = calc_loss_batch(x, y, mini, "cpu")
    assert perda.shape == ()
    assert torch.allclose(perda, manual, atol=1e-5)


def test_modelo_sem_treino_tem_perda_perto_de_ln_do_vocabulario():
    torch.manual_seed(0)
    modelo = GPTModel({**MINI, "vocab_size": 50257}).eval()
    x = torch.randint(0, 50257, (4, 8))
    y = torch.randint(0, 50257, (4, 8))
    with torch.no_grad():
        perda = calc_loss_batch(x, y, modelo, "cpu").item()
    assert abs(perda - math.log(50257)) < 0.5


def test_calc_loss_loader_respeita_num_batches_e_lida_com_carregador_vazio(mini):
    lotes = [(torch.randint(0, 50, (2, 4)), torch.randint(0, 50, (2, 4))) for _ in range(3)]
    with torch.no_grad():
        primeira = calc_loss_batch(*lotes[0], mini, "cpu").item()
        assert calc_loss_loader(lotes, mini, "cpu", num_batches=1) == pytest.approx(primeira)
        media = sum(calc_loss_batch(x, y, mini, "cpu").item() for x, y in lotes) / 3
        assert calc_loss_loader(lotes, mini, "cpu") == pytest.approx(media)
        assert math.isnan(calc_loss_loader([], mini, "cpu"))


def test_validacao_sao_livros_inteiros_que_o_treino_nunca_ve():
    assert not set(TRAIN_BOOKS) & set(HELD_OUT_BOOKS)
    assert set(TRAIN_BOOKS) | set(HELD_OUT_BOOKS) == set(estatistica.MACHADO_BOOKS)
    for modo, cfg in pretreino.PRETRAIN_SETTINGS.items():
        assert cfg["val_books"] and set(cfg["val_books"]) <= set(HELD_OUT_BOOKS), modo
        assert cfg["model"]["vocab_size"] == course_tokenizer().n_vocab, modo
    treino, val = load_pretraining_texts("rapido")
    assert val == load_text("memorial-de-aires")
    assert treino.count("<|endoftext|>") == len(TRAIN_BOOKS) - 1
    assert load_text("domCasmurro") in treino and val[1000:2000] not in treino


def test_livros_unidos_pelo_fim_de_texto_viram_um_token_especial_so():
    """O texto de vários livros traz <|endoftext|> entre eles: o encode simples recusa (o que derrubava o 08 no
    modo completo); os carregadores o transformam no id especial, uma vez por emenda."""
    tokenizer = course_tokenizer()
    _, val = load_pretraining_texts("completo")                 # os dois livros guardados
    assert val.count("<|endoftext|>") == len(HELD_OUT_BOOKS) - 1 == 1
    with pytest.raises(ValueError):
        tokenizer.encode(val)
    ids = tokenizer.encode(val, allowed_special={"<|endoftext|>"})
    assert ids.count(tokenizer.eot_token) == 1
    loader = pretreino.create_dataloader(val, 8, 128, 128, shuffle=False, drop_last=False, tokenizer=tokenizer)
    janelas = torch.cat([x.flatten() for x, _ in loader])
    assert (janelas == tokenizer.eot_token).sum() == 1 and janelas.tolist() == ids[:len(janelas)]


def test_unigramas_e_bigramas_iguais_a_contagem_em_laco():
    sorteio = torch.Generator().manual_seed(0)
    treino = torch.randint(0, 12, (400,), generator=sorteio).tolist()
    val = torch.randint(0, 12, (80,), generator=sorteio).tolist()
    V, k, alpha = 12, 0.3, 0.1
    pares, linhas = {}, [0] * V
    for a, b in zip(treino, treino[1:]):
        pares[(a, b)] = pares.get((a, b), 0) + 1
        linhas[a] += 1
    esperado = -sum(math.log((pares.get((a, b), 0) + k) / (linhas[a] + k * V)) for a, b in zip(val, val[1:]))
    assert bigram_loss(treino, val, V, k) == pytest.approx(esperado / (len(val) - 1))
    uni = -sum(math.log((treino.count(t) + alpha) / (len(treino) + alpha * V)) for t in val) / len(val)
    assert unigram_loss(treino, val, V, alpha) == pytest.approx(uni)


def test_k_dos_bigramas_e_escolhido_sem_a_validacao():
    treino = (list(range(10)) * 60)[:500]                   # texto muito previsível: pouca suavização é melhor
    candidatos = (0.001, 0.1, 10.0)
    escolhido = best_bigram_k(treino, 10, candidatos)
    corte = int(len(treino) * 0.9)
    assert escolhido == min(candidatos, key=lambda k: bigram_loss(treino[:corte], treino[corte:], 10, k)) == 0.001


def test_bits_por_caractere():
    assert bits_per_char(math.log(2), 10, 10) == pytest.approx(1.0)
    assert bits_per_char(math.log(4), 5, 20) == pytest.approx(0.5)      # 2 bits por token, 4 caracteres por token


def test_aquecimento_e_cosseno():
    taxas = [warmup_cosine_lr(p, 100, 1e-3, 1e-4, 10) for p in range(120)]
    assert taxas[9] == pytest.approx(1e-3) and taxas[0] == pytest.approx(1e-4)
    assert all(a < b for a, b in zip(taxas[:10], taxas[1:10]))             # sobe no aquecimento
    assert all(a >= b for a, b in zip(taxas[9:100], taxas[10:100]))        # desce depois
    assert taxas[100] == pytest.approx(1e-4) and taxas[119] == pytest.approx(1e-4)
    assert taxas[55] == pytest.approx((1e-3 + 1e-4) / 2)                   # meio do cosseno


def test_laco_aplica_a_taxa_do_passo_e_corta_o_gradiente():
    torch.manual_seed(0)
    mini = GPTModel({**MINI, "vocab_size": 8192})              # o vocabulário do tokenizador da amostra
    lotes = [(torch.randint(0, 8192, (2, 8)), torch.randint(0, 8192, (2, 8))) for _ in range(4)]
    antes = torch.cat([p.detach().flatten().clone() for p in mini.parameters()])
    otimizador = torch.optim.SGD(mini.parameters(), lr=1.0)
    tokenizador = course_tokenizer()
    train_model_simple(mini, lotes[:1], lotes[:1], otimizador, "cpu", num_epochs=1, eval_freq=10, eval_iter=1,
                       start_context="a", tokenizer=tokenizador, max_steps=1, lr_schedule=lambda p: 0.5,
                       grad_clip=1e-3)
    depois = torch.cat([p.detach().flatten() for p in mini.parameters()])
    assert otimizador.param_groups[0]["lr"] == 0.5
    assert torch.linalg.vector_norm(depois - antes) <= 0.5 * 1e-3 * (1 + 1e-4)   # passo = lr x gradiente cortado
    assert torch.linalg.vector_norm(depois - antes) > 0


def test_amostra_do_treino_sai_numa_linha_propria(capsys):
    """A amostra gerada no fim da época não pode grudar no desenho da barra de progresso (no Jupyter, grudava)."""
    torch.manual_seed(0)
    mini = GPTModel({**MINI, "vocab_size": 8192})
    lotes = [(torch.randint(0, 8192, (2, 8)), torch.randint(0, 8192, (2, 8)))]
    train_model_simple(mini, lotes, lotes, torch.optim.SGD(mini.parameters(), lr=0.1), "cpu", num_epochs=1,
                       eval_freq=10, eval_iter=1, start_context="Capitu", tokenizer=course_tokenizer(), max_steps=1)
    linhas = [linha.rstrip("\r").rsplit("\r", 1)[-1] for linha in capsys.readouterr().out.split("\n")]
    assert any(linha.startswith("Capitu") for linha in linhas), linhas


class OtimizadorContador(torch.optim.SGD):
    """SGD que conta os passos e guarda a taxa de aprendizado de cada um."""

    def __init__(self, params):
        super().__init__(params, lr=0.1)
        self.taxas = []

    def step(self, closure=None):
        self.taxas.append(self.param_groups[0]["lr"])
        return super().step(closure)


@pytest.mark.parametrize("max_steps, passos, epocas", [(3, 3, 1), (6, 6, 2), (None, 12, 3)])
def test_train_loop_passos_avaliacoes_e_fim_de_epoca(max_steps, passos, epocas):
    """Um laço só para o curso: avalia no passo 1, a cada eval_freq, nos eval_steps e no último; a época
    interrompida também fecha; a taxa de cada passo vem de lr_schedule(passo - 1)."""
    torch.manual_seed(0)
    modelo = GPTModel(MINI)
    lotes = [(torch.randint(0, 50, (2, 8)), torch.randint(0, 50, (2, 8))) for _ in range(4)]   # 4 lotes por época
    otimizador = OtimizadorContador(modelo.parameters())
    epocas_vistas, modos = [], []

    def perda(lote):
        modos.append(modelo.training)
        return calc_loss_batch(*lote, modelo, "cpu")

    def avaliar(passo):
        modos.append(modelo.training)
        return {"passo_ao_quadrado": float(passo ** 2)}

    historico = train_loop(modelo, otimizador, lotes, "cpu", perda, num_epochs=3, max_steps=max_steps,
                           lr_schedule=lambda p: 0.01 * (p + 1), eval_freq=5, eval_steps=(2,), evaluate=avaliar,
                           on_epoch_end=lambda epoca, barra, h: epocas_vistas.append((epoca, h["passos"])))
    avaliados = sorted({p for p in (1, 2, 6, 11) if p <= passos} | {passos})
    assert historico["passos"] == passos and len(historico["perdas"]) == passos
    assert [a["passo"] for a in historico["avaliacoes"]] == avaliados
    assert [a["passo_ao_quadrado"] for a in historico["avaliacoes"]] == [float(p ** 2) for p in avaliados]
    assert [a["tokens"] for a in historico["avaliacoes"]] == [16 * p for p in avaliados]
    assert historico["exemplos"] == 2 * passos
    assert otimizador.taxas == pytest.approx([0.01 * (p + 1) for p in range(passos)])
    assert [e for e, _ in epocas_vistas] == list(range(1, epocas + 1)) and epocas_vistas[-1][1] == passos
    assert modos.count(False) == len(avaliados) and not modelo.training    # avalia em modo de avaliação


def test_train_loop_para_no_teto_de_seguranca_com_aviso(capsys):
    torch.manual_seed(0)
    modelo = GPTModel(MINI)
    lotes = [(torch.randint(0, 50, (2, 8)), torch.randint(0, 50, (2, 8))) for _ in range(3)]
    historico = train_loop(modelo, torch.optim.SGD(modelo.parameters(), lr=0.1), lotes, "cpu",
                           lambda lote: (time.sleep(0.05), calc_loss_batch(*lote, modelo, "cpu"))[1],
                           num_epochs=10, max_seconds=0.01, evaluate=lambda passo: {})
    assert historico["passos"] == 1 and historico["motivo"].startswith("aviso")
    assert [a["passo"] for a in historico["avaliacoes"]] == [1]
    assert "limite de segurança" in capsys.readouterr().out


# ---------------------------------------------------------------- generate

def test_prompt_vazio_da_erro_claro(mini):
    with pytest.raises(ValueError, match="prompt está vazio"):
        generate(mini, torch.zeros((1, 0), dtype=torch.long), max_new_tokens=3, context_size=8)
    with pytest.raises(ValueError, match="formato"):
        generate(mini, torch.tensor([1, 2, 3]), max_new_tokens=3, context_size=8)


@pytest.mark.parametrize("opcoes, trecho", [({"temperature": -1.0}, "negativa"),
                                            ({"temperature": 1.0, "top_k": 0}, "top_k"),
                                            ({"temperature": 1.0, "top_p": 0.0}, "top_p"),
                                            ({"temperature": 1.0, "top_p": 1.5}, "top_p")])
def test_parametros_invalidos_dao_erro_claro(mini, opcoes, trecho):
    with pytest.raises(ValueError, match=trecho):
        generate(mini, torch.tensor([[1]]), max_new_tokens=2, context_size=8, **opcoes)


def test_prompt_maior_que_o_contexto_usa_so_os_ultimos_tokens(mini):
    longo = torch.randint(0, 50, (1, 20))                    # 20 tokens; o modelo só tem 8 posições
    vistos = []
    gancho = mini.register_forward_pre_hook(lambda _m, args: vistos.append(args[0].shape[1]))
    saida = generate(mini, longo, max_new_tokens=5, context_size=8)
    gancho.remove()
    assert max(vistos) == 8
    assert torch.equal(saida[:, :20], longo)
    so_o_fim = generate(mini, longo[:, -8:], max_new_tokens=5, context_size=8)
    assert torch.equal(saida[:, 20:], so_o_fim[:, 8:])


def test_temperatura_zero_e_top_k_1_sao_a_escolha_gulosa(mini):
    prompt = torch.tensor([[3, 7, 1]])
    guloso = generate_text_simple(mini, prompt, 6, 8)
    assert torch.equal(generate(mini, prompt, 6, 8, temperature=0.0), guloso)
    for semente in range(5):
        torch.manual_seed(semente)
        assert torch.equal(generate(mini, prompt, 6, 8, temperature=1.5, top_k=1), guloso)


def test_top_p_mantem_pelo_menos_um_token(mini):
    prompt = torch.tensor([[3, 7, 1]])
    guloso = generate_text_simple(mini, prompt, 6, 8)
    torch.manual_seed(0)
    assert torch.equal(generate(mini, prompt, 6, 8, temperature=1.0, top_p=1e-9), guloso)


def test_amostras_ficam_dentro_do_top_k_e_do_nucleo(mini):
    prompt = torch.tensor([[3, 7, 1]]).repeat(200, 1)
    with torch.no_grad():
        probs = torch.softmax(mini(prompt[:1])[0, -1], dim=-1)
    torch.manual_seed(0)
    sorteados = set(generate(mini, prompt, 1, 8, temperature=1.0, top_k=3)[:, -1].tolist())
    assert sorteados <= set(torch.topk(probs, 3).indices.tolist())
    ordenadas, indices = torch.sort(probs, descending=True)
    nucleo = set(indices[(torch.cumsum(ordenadas, 0) - ordenadas) < 0.5].tolist())
    torch.manual_seed(0)
    sorteados = set(generate(mini, prompt, 1, 8, temperature=1.0, top_p=0.5)[:, -1].tolist())
    assert sorteados <= nucleo and len(sorteados) >= 1


def test_amostragem_com_semente_se_repete(mini):
    prompt = torch.tensor([[3]])
    saidas = []
    for semente in (123, 123, 7):
        torch.manual_seed(semente)
        saidas.append(generate(mini, prompt, 7, 8, temperature=2.0))
    assert torch.equal(saidas[0], saidas[1])
    assert not torch.equal(saidas[0], saidas[2])


def test_para_no_eos_sem_incluir_o_token(mini):
    prompt = torch.tensor([[3, 7, 1]])
    guloso = generate_text_simple(mini, prompt, 6, 8)[0, 3:].tolist()
    primeiro = guloso[0]
    assert generate(mini, prompt, 6, 8, eos_id=primeiro).shape[1] == 3
    ausente = next(t for t in range(50) if t not in guloso)
    assert generate(mini, prompt, 6, 8, eos_id=ausente).shape[1] == 3 + 6


def test_generate_usa_modo_de_avaliacao_e_devolve_o_modo_original():
    torch.manual_seed(0)
    modelo = GPTModel({**MINI, "drop_rate": 0.5}).train()
    prompt = torch.tensor([[3, 7, 1]])
    a = generate(modelo, prompt, 6, 8)
    b = generate(modelo, prompt, 6, 8)
    assert torch.equal(a, b)                                   # sem dropout durante a geração
    assert modelo.training


# ---------------------------------------------------------------- checkpoints

def test_checkpoint_volta_com_logits_identicos_e_otimizador(tmp_path, mini):
    otimizador = torch.optim.AdamW(mini.parameters(), lr=1e-3)
    x = torch.randint(0, 50, (2, 8))
    calc_loss_batch(x, x, mini, "cpu").backward()
    otimizador.step()
    caminho = save_checkpoint(tmp_path / "ckpt" / "mini.pt", mini, otimizador, MINI, historico={"val": [1.0]})
    assert not list(caminho.parent.glob("*.part"))
    assert set(torch.load(caminho, weights_only=True)) >= {"config", "model_state_dict", "optimizer_state_dict"}

    recarregado, pacote = load_checkpoint(caminho)
    assert pacote["config"] == MINI and pacote["historico"] == {"val": [1.0]}
    with torch.no_grad():
        assert torch.equal(mini.eval()(x), recarregado.eval()(x))

    modelo_novo = GPTModel(MINI)
    otimizador_novo = torch.optim.AdamW(modelo_novo.parameters(), lr=1e-3)
    devolvido, _ = load_checkpoint(caminho, optimizer=otimizador_novo, model=modelo_novo)
    assert devolvido is modelo_novo
    assert otimizador_novo.state_dict()["state"][0]["step"] == 1
    assert torch.equal(otimizador_novo.state_dict()["state"][0]["exp_avg"],
                       otimizador.state_dict()["state"][0]["exp_avg"])


def test_checkpoint_ausente_diz_o_arquivo(tmp_path):
    with pytest.raises(FileNotFoundError, match="nao-existe.pt"):
        load_checkpoint(tmp_path / "nao-existe.pt")


def test_arquivo_que_nao_e_checkpoint_da_erro_claro(tmp_path):
    texto = tmp_path / "texto.pt"
    texto.write_text("isto não é um checkpoint")
    with pytest.raises(ValueError, match="texto.pt"):
        load_checkpoint(texto)
    sem_chaves = tmp_path / "sem-chaves.pt"
    torch.save({"pesos": torch.zeros(2)}, sem_chaves)
    with pytest.raises(ValueError, match=r"sem-chaves.pt não é um checkpoint do curso"):
        load_checkpoint(sem_chaves)


def test_checkpoint_que_nao_combina_diz_o_arquivo_e_o_que_difere(tmp_path, mini):
    mentiroso = save_checkpoint(tmp_path / "mentiroso.pt", mini, config={**MINI, "emb_dim": 32})
    with pytest.raises(ValueError, match=r"mentiroso.pt.*formatos diferentes.*tok_emb.weight"):
        load_checkpoint(mentiroso)
    certo = save_checkpoint(tmp_path / "certo.pt", mini, config=MINI)
    with pytest.raises(ValueError, match=r"certo.pt não combina com o modelo recebido.*faltam"):
        load_checkpoint(certo, model=GPTModel({**MINI, "n_layers": 2}))
    with pytest.raises(ValueError, match=r"certo.pt não guardou o estado do otimizador"):
        load_checkpoint(certo, optimizer=torch.optim.AdamW(mini.parameters()))


# ---------------------------------------------------------------- pesos do GPT-2

def escrever_gpt2_minusculo(destino, monkeypatch):
    """Escreve um GPT-2 aleatório minúsculo no formato do Hugging Face; devolve o modelo de referência."""
    transformers = pytest.importorskip("transformers")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    monkeypatch.setitem(pretreino.GPT2_SIZES, "gpt2", {"emb_dim": 32, "n_layers": 2, "n_heads": 4})
    config = transformers.GPT2Config(vocab_size=50257, n_positions=1024, n_embd=32, n_layer=2, n_head=4,
                                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    torch.manual_seed(0)
    referencia = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        for p in referencia.parameters():
            p.normal_(0.0, 0.1)                    # pesos longe do padrão (vieses ≠ 0, LayerNorm ≠ 1)
    pesos = {k.removeprefix("transformer."): v.contiguous().clone()
             for k, v in referencia.state_dict().items() if not k.startswith("lm_head")}
    destino.parent.mkdir(parents=True, exist_ok=True)
    safetensors_torch.save_file(pesos, str(destino))
    return referencia


def test_gpt2_minusculo_do_espelho_carrega_e_bate_com_o_hugging_face(pastas, monkeypatch):
    espelho = pastas / "espelho"
    referencia = escrever_gpt2_minusculo(espelho / "openai-community" / "gpt2" / "model.safetensors", monkeypatch)
    monkeypatch.setenv("LLM_DADOS_ESPELHO", str(espelho))
    nosso = load_gpt2("gpt2")
    assert not nosso.training
    ids = torch.randint(0, 50257, (2, 12))
    with torch.no_grad():
        esperado = referencia(ids).logits
        obtido = nosso(ids)
    assert obtido.shape == esperado.shape == (2, 12, 50257)
    assert torch.allclose(obtido, esperado, atol=1e-4, rtol=1e-4)
    assert (pastas / "cache" / "gpt2-pesos" / "gpt2" / "model.safetensors").is_file()

    monkeypatch.delenv("LLM_DADOS_ESPELHO")                  # segunda vez: vem do cache, sem espelho nem rede
    with torch.no_grad():
        assert torch.equal(load_gpt2("gpt2")(ids), obtido)


def test_arquivo_que_nao_e_gpt2_no_espelho_e_recusado_sem_sujar_o_cache(pastas, monkeypatch):
    falso = pastas / "espelho" / "openai-community" / "gpt2" / "model.safetensors"
    falso.parent.mkdir(parents=True)
    falso.write_bytes(b"<html>pagina de erro</html>")
    monkeypatch.setenv("LLM_DADOS_ESPELHO", str(pastas / "espelho"))
    with pytest.raises(DownloadError, match="não tem o conteúdo esperado"):
        download_gpt2_weights("gpt2")
    assert arquivos_em(pastas / "cache") == []


def test_url_inalcancavel_falha_rapido_em_portugues_sem_deixar_nada(pastas, monkeypatch):
    monkeypatch.delenv("LLM_DADOS_ESPELHO", raising=False)
    monkeypatch.setattr(pretreino, "GPT2_WEIGHTS_URL", "http://127.0.0.1:9/{size}/model.safetensors")
    inicio = time.perf_counter()
    with pytest.raises(DownloadError, match=r"Não consegui baixar http://127\.0\.0\.1:9/gpt2/model\.safetensors"):
        load_gpt2("gpt2")
    assert time.perf_counter() - inicio < 10
    assert arquivos_em(pastas / "cache") == []


def test_tamanho_desconhecido_do_gpt2():
    with pytest.raises(ValueError, match="gpt2-medium"):
        gpt2_config("gpt3")
    assert gpt2_config("gpt2-xl")["emb_dim"] == 1600 and gpt2_config()["qkv_bias"] is True


# ---------------------------------------------------------------- modelo base

def test_fonte_invalida_e_checkpoint_ausente(pastas):
    with pytest.raises(ValueError, match="source"):
        load_base_model("rapido", "cpu", source="internet")
    with pytest.raises(FileNotFoundError, match="05-pretreino-rapido.pt"):
        load_base_model("rapido", "cpu", source="checkpoint")


def test_tokenizador_viaja_no_checkpoint_com_weights_only(tmp_path):
    for original in (course_tokenizer(), __import__("tiktoken").get_encoding("gpt2")):
        caminho = tmp_path / f"{original.name}.pt"
        torch.save({"tokenizer": tokenizer_state(original)}, caminho)
        refeito = tokenizer_from_state(torch.load(caminho, weights_only=True)["tokenizer"])
        texto = "Capitu olhou para mim, e eu, ah! 🦜 <|endoftext|> fim"
        assert refeito.n_vocab == original.n_vocab and refeito.eot_token == original.eot_token
        assert (refeito.encode(texto, allowed_special="all") == original.encode(texto, allowed_special="all"))
    assert caminho.stat().st_size < 5_000                       # o do GPT-2 vai só pelo nome


def test_modelo_base_vem_do_checkpoint_do_capitulo_com_o_tokenizador(pastas):
    tokenizador = course_tokenizer()
    config = {**MINI, "vocab_size": tokenizador.n_vocab}
    torch.manual_seed(1)
    modelo = GPTModel(config)
    save_checkpoint(base_checkpoint_path("rapido"), modelo, None, config, tokenizer=tokenizer_state(tokenizador))
    base, tokenizador_base, config_base, fonte = load_base_model("rapido", "cpu")
    assert fonte == "checkpoint" and config_base == config and not base.training
    assert tokenizador_base.encode("Dom Casmurro") == tokenizador.encode("Dom Casmurro")
    x = torch.randint(0, tokenizador.n_vocab, (1, 8))
    with torch.no_grad():
        assert torch.equal(base(x), modelo.eval()(x))


def test_checkpoint_antigo_sem_tokenizador_e_recusado_e_o_gpt2_entra_no_completo(pastas, monkeypatch, capsys):
    config = {**MINI, "vocab_size": 50257}
    save_checkpoint(base_checkpoint_path("completo"), GPTModel(config), None, config)
    with pytest.raises(ValueError, match="não guarda o tokenizador"):
        load_base_model("completo", "cpu", source="checkpoint")
    espelho = pastas / "espelho"
    escrever_gpt2_minusculo(espelho / "openai-community" / "gpt2" / "model.safetensors", monkeypatch)
    monkeypatch.setenv("LLM_DADOS_ESPELHO", str(espelho))
    _, tokenizador, config_base, fonte = load_base_model("completo", "cpu")
    assert fonte == "gpt2" and tokenizador.name == "gpt2" and config_base["vocab_size"] == 50257
    assert "não serve" in capsys.readouterr().out


def test_sem_checkpoint_nem_gpt2_o_modelo_base_e_pre_treinado_no_tamanho_rapido(pastas, monkeypatch):
    minusculo = {"model": {"vocab_size": 8192, "context_length": 32, "emb_dim": 16, "n_heads": 2, "n_layers": 1,
                           "drop_rate": 0.0, "qkv_bias": False},
                 "val_books": ["reliquias"], "batch_size": 4, "lr": 1e-2, "min_lr": 1e-3,
                 "warmup_steps": 2, "grad_clip": 1.0, "weight_decay": 0.1, "num_epochs": 1, "max_steps": 20,
                 "max_seconds": None, "eval_freq": 10, "eval_iter": 2, "train_chars": None, "val_chars": None}
    monkeypatch.setitem(pretreino.PRETRAIN_SETTINGS, "rapido", minusculo)
    monkeypatch.setattr(pretreino, "TRAIN_BOOKS", ["domCasmurro"])
    monkeypatch.setattr(pretreino, "GPT2_WEIGHTS_URL", "http://127.0.0.1:9/{size}/model.safetensors")
    monkeypatch.setitem(pretreino.GPT2_SIZES, "gpt2", {"emb_dim": 16, "n_layers": 1, "n_heads": 2})
    base, tokenizador, config, fonte = load_base_model("completo", "cpu")   # sem checkpoint; o GPT-2 falha
    assert fonte == "pretrain" and config == minusculo["model"] and tokenizador.name == "machado-8192"
    _, pacote = load_checkpoint(base_checkpoint_path("rapido"))          # o pré-treino é o do tamanho rápido
    assert not base_checkpoint_path("completo").exists()
    historico = pacote["historico"]
    # avaliações nos passos 1 e 11 (eval_freq) e nos da validação inteira: 2, 5, 10 e o último (20)
    assert historico["tokens_seen"] == [passo * 4 * 32 for passo in (1, 2, 5, 10, 11, 20)]
    assert historico["val_inteira"]["passos"] == [2, 5, 10, 20]
    assert historico["val_loss"] == historico["val_inteira"]["perdas"][-1]
    assert historico["val_losses"][-1] < historico["val_losses"][0] - 0.5          # 20 passos já ensinam algo
    assert historico["val_loss"] < math.log(8192) - 0.5
    assert load_base_model("completo", "cpu")[3] == "checkpoint"          # da 2ª vez, o checkpoint rápido serve


def escrever_modelo_do_curso(pasta, semente=1):
    """Um 'modelo base do curso' minúsculo, no formato do verdadeiro (safetensors + cartão com o sha256)."""
    tokenizador = course_tokenizer()
    config = {**MINI, "vocab_size": tokenizador.n_vocab}
    torch.manual_seed(semente)
    modelo = GPTModel(config).eval()
    pasta.mkdir(parents=True, exist_ok=True)
    arquivo = save_course_base_model(pasta / COURSE_BASE_FILE, modelo, config, tokenizador)
    (pasta / "cartao.json").write_text(json.dumps({"sha256": sha256_of(arquivo)}), encoding="utf-8")
    return modelo, config


def test_modelo_do_curso_vem_primeiro_no_rapido_com_o_tokenizador(pastas, capsys):
    modelo, config = escrever_modelo_do_curso(pastas / "modelo-base")
    tokenizador = course_tokenizer()
    save_checkpoint(base_checkpoint_path("rapido"), GPTModel(config), None, config,
                    tokenizer=tokenizer_state(tokenizador))                  # existe, mas o do curso vem antes
    base, tokenizador_base, config_base, fonte = load_base_model("rapido", "cpu")
    assert fonte == "curso" and config_base == config and not base.training
    assert tokenizador_base.encode("Capitu olhou, ah!") == tokenizador.encode("Capitu olhou, ah!")
    x = torch.randint(0, tokenizador.n_vocab, (1, 8))
    with torch.no_grad():
        assert torch.equal(base(x), modelo(x))
    assert "modelo base do curso" in capsys.readouterr().out
    assert load_base_model("rapido", "cpu", source="checkpoint")[3] == "checkpoint"   # o seu, se pedir


def test_modelo_do_curso_corrompido_e_recusado_e_a_regra_segue(pastas, capsys):
    escrever_modelo_do_curso(pastas / "modelo-base")
    arquivo = pastas / "modelo-base" / COURSE_BASE_FILE
    dados = bytearray(arquivo.read_bytes())
    dados[-1] ^= 0xFF                                                       # um bit trocado no fim dos pesos
    arquivo.write_bytes(bytes(dados))
    with pytest.raises(ValueError, match="não confere com o cartão"):
        load_base_model("rapido", "cpu", source="curso")
    tokenizador = course_tokenizer()
    config = {**MINI, "vocab_size": tokenizador.n_vocab}
    save_checkpoint(base_checkpoint_path("rapido"), GPTModel(config), None, config,
                    tokenizer=tokenizer_state(tokenizador))
    assert load_base_model("rapido", "cpu")[3] == "checkpoint"
    assert "não serve agora" in capsys.readouterr().out
    arquivo.unlink()
    with pytest.raises(FileNotFoundError, match="treinar_modelo_base.py"):
        load_course_base_model("cpu", pastas / "modelo-base")


def test_modelo_base_do_curso_versionado_confere_e_vence_os_bigramas():
    """O arquivo do repositório: hash do cartão, tamanho, e a medida do cartão 0,10 bit/caractere abaixo da tabela."""
    pasta = course_base_dir()
    cartao = json.loads((pasta / "cartao.json").read_text(encoding="utf-8"))
    arquivo = pasta / cartao["arquivo"]
    assert sha256_of(arquivo) == cartao["sha256"] and arquivo.stat().st_size <= 25_000_000
    validacao = cartao["validacao"]
    assert validacao["val_bits_por_caractere"] <= validacao["bigrama_bits_por_caractere"] - 0.10
    modelo, tokenizador, config, fonte = load_course_base_model("cpu")
    assert fonte == "curso" and config == cartao["modelo"] and tokenizador.name == course_tokenizer().name
    assert sum(p.numel() for p in modelo.parameters()) == cartao["parametros"]


def test_bigramas_nas_janelas_e_a_tabela_do_texto_sem_os_pares_entre_janelas():
    torch.manual_seed(0)
    texto = torch.randint(0, 30, (4 * 20 + 1,))
    janelas = torch.stack([texto[i * 20:i * 20 + 21] for i in range(4)])      # 4 janelas de 21 (entrada + alvo)
    val = torch.randint(0, 30, (200,))
    perda, k = bigram_loss_on_windows(janelas, val, 30)
    assert perda == pytest.approx(bigram_loss(texto, val, 30, k))          # janelas encostadas = o texto inteiro
    separadas = torch.stack([janelas[0], janelas[2]])                       # sem as janelas do meio: outros pares
    assert bigram_loss_on_windows(separadas, val, 30)[0] != pytest.approx(perda)
    relidas = torch.cat([janelas, janelas[[1, 0]]])                          # uma segunda época que relê duas
    assert bigram_loss_on_windows(relidas, val, 30) == (perda, k)


# ---------------------------------------------------------------- formatos reais do GPT-2, carregamento estrito

@pytest.mark.parametrize("tamanho", ["gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"])
def test_formatos_esperados_sao_os_do_hugging_face_e_o_carregamento_e_estrito(tamanho):
    """Os quatro tamanhos com tensores `meta` (sem memória): as chaves e formatos do GPT2Model da Hugging Face são
    exatamente os que conferimos no download, e o carregador usa todas e recusa uma a mais ou uma a menos."""
    transformers = pytest.importorskip("transformers")
    cfg = gpt2_config(tamanho)
    config_hf = transformers.GPT2Config(n_embd=cfg["emb_dim"], n_layer=cfg["n_layers"], n_head=cfg["n_heads"])
    with torch.device("meta"):
        hf = transformers.GPT2Model(config_hf)
        nosso = GPTModel(cfg)
    formatos_hf = {k: tuple(v.shape) for k, v in hf.state_dict().items()
                   if not k.endswith((".attn.bias", ".attn.masked_bias"))}
    assert formatos_hf == pretreino.gpt2_expected_shapes(tamanho)
    pesos = {k: torch.empty(f, device="meta") for k, f in formatos_hf.items()}
    assert load_weights_into_gpt(nosso, pesos) is nosso
    with pytest.raises(ValueError, match="não usa"):
        load_weights_into_gpt(nosso, {**pesos, "h.0.mlp.c_extra.weight": torch.empty(2, device="meta")})
    incompleto = dict(pesos)
    del incompleto[f"h.{cfg['n_layers'] - 1}.ln_2.bias"]
    with pytest.raises(KeyError, match="ln_2.bias"):
        load_weights_into_gpt(nosso, incompleto)


def test_arquivo_de_outro_tamanho_no_espelho_e_recusado(pastas, monkeypatch):
    safetensors_torch = pytest.importorskip("safetensors.torch")
    monkeypatch.setitem(pretreino.GPT2_SIZES, "gpt2", {"emb_dim": 16, "n_layers": 2, "n_heads": 2})
    formatos = pretreino.gpt2_expected_shapes("gpt2")
    arquivo = pastas / "espelho" / "openai-community" / "gpt2" / "model.safetensors"
    arquivo.parent.mkdir(parents=True)
    sem_o_ultimo_bloco = {k: torch.zeros(f) for k, f in formatos.items() if not k.startswith("h.1.")}
    safetensors_torch.save_file(sem_o_ultimo_bloco, str(arquivo))
    monkeypatch.setenv("LLM_DADOS_ESPELHO", str(pastas / "espelho"))
    with pytest.raises(DownloadError, match="faltam 12 pesos"):
        download_gpt2_weights("gpt2")
    assert arquivos_em(pastas / "cache") == []


def test_ferramenta_escreve_pesos_sinteticos_no_formato_do_espelho(tmp_path, monkeypatch):
    pytest.importorskip("safetensors")
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "ferramentas"))
    import pesos_gpt2_sinteticos

    monkeypatch.setitem(pretreino.GPT2_SIZES, "gpt2", {"emb_dim": 16, "n_layers": 2, "n_heads": 2})
    destino = pesos_gpt2_sinteticos.escrever(tmp_path, "gpt2")
    assert destino == tmp_path / "openai-community" / "gpt2" / "model.safetensors"
    pretreino._check_gpt2_safetensors(destino, "gpt2")
    monkeypatch.setenv("LLM_DADOS_ESPELHO", str(tmp_path))
    monkeypatch.setenv("LLM_CACHE_DIR", str(tmp_path / "cache"))
    modelo = load_gpt2("gpt2")
    assert modelo.tok_emb.weight.shape == (50257, 16)
