"""Testes do capítulo 06: dados do Fake.br, divisão por par, dataset, cabeça de classificação, classify_text e LoRA."""
import os
import zipfile

import pytest
import tiktoken
import torch

from llm_do_zero.oficina import DownloadError
from llm_do_zero.gpt import GPTModel
from llm_do_zero.finetuning import (
    add_classification_head, calc_accuracy_loader, calc_loss_batch_classifier, classifier_logits,
    classify_text, FAKEBR_LABELS, FakeNewsDataset, LinearWithLoRA, load_fakebr, LoRALayer, replace_linear_with_lora,
    sample_pairs, split_by_pair, train_classifier_simple,
)

PAD = 50256
CONFIG_PEQUENA = {"vocab_size": 50257, "context_length": 16, "emb_dim": 16, "n_heads": 2, "n_layers": 2,
                  "drop_rate": 0.0, "qkv_bias": False}


@pytest.fixture(scope="module")
def tokenizer():
    return tiktoken.get_encoding("gpt2")


@pytest.fixture
def classificador():
    torch.manual_seed(0)
    return add_classification_head(GPTModel(CONFIG_PEQUENA), num_classes=2, trainable="all").eval()


def exemplos_sinteticos(n_pares: int = 100) -> list[dict]:
    return [{"texto": f"notícia {rotulo} do par {par}", "rotulo": rotulo, "par": par}
            for par in range(1, n_pares + 1) for rotulo in (1, 0)]


# ----------------------------------------------------------------------------------------------------------------
# Divisão por par


def test_split_by_pair_nao_separa_pares_e_e_deterministica():
    exemplos = exemplos_sinteticos(100)
    treino, val, teste = split_by_pair(exemplos)
    pares = [{e["par"] for e in parte} for parte in (treino, val, teste)]
    assert not (pares[0] & pares[1] or pares[0] & pares[2] or pares[1] & pares[2])
    assert sum(map(len, (treino, val, teste))) == len(exemplos)
    assert (len(pares[0]), len(pares[1]), len(pares[2])) == (70, 10, 20)
    for parte in (treino, val, teste):  # cada par leva uma falsa e uma verdadeira: partes equilibradas
        assert sum(e["rotulo"] for e in parte) * 2 == len(parte)
    assert split_by_pair(exemplos) == (treino, val, teste)
    assert split_by_pair(exemplos, seed=7) != (treino, val, teste)


def test_split_by_pair_recusa_fracoes_invalidas():
    with pytest.raises(ValueError, match="Frações inválidas"):
        split_by_pair(exemplos_sinteticos(10), train_frac=0.9, val_frac=0.2)


def test_sample_pairs_mantem_pares_inteiros():
    exemplos = exemplos_sinteticos(50)
    amostra = sample_pairs(exemplos, 10, seed=1)
    assert len(amostra) == 20 and len({e["par"] for e in amostra}) == 10
    assert amostra == sample_pairs(exemplos, 10, seed=1)
    assert sample_pairs(exemplos, None) == exemplos


@pytest.mark.skipif(not os.environ.get("LLM_DADOS_ESPELHO"), reason="precisa do espelho local dos dados")
def test_corpus_real_dividido_por_par():
    noticias = load_fakebr()
    assert len(noticias) == 7200 and sum(e["rotulo"] for e in noticias) == 3600
    assert all(e["texto"] and "\r" not in e["texto"] for e in noticias)
    treino, val, teste = split_by_pair(noticias)
    assert (len(treino), len(val), len(teste)) == (5040, 720, 1440)
    pares = [{e["par"] for e in parte} for parte in (treino, val, teste)]
    assert not (pares[0] & pares[1] or pares[0] & pares[2] or pares[1] & pares[2])


# ----------------------------------------------------------------------------------------------------------------
# Dataset: truncar e preencher


def test_dataset_preenche_textos_curtos(tokenizer):
    texto = "O Senado aprovou a proposta."
    ids_reais = tokenizer.encode(texto)
    ds = FakeNewsDataset([{"texto": texto, "rotulo": 1, "par": 1}], tokenizer, max_length=20)
    ids, rotulo = ds[0]
    assert ids.shape == (20,) and rotulo.item() == 1
    assert ids[:len(ids_reais)].tolist() == ids_reais
    assert ids[len(ids_reais):].tolist() == [PAD] * (20 - len(ids_reais))
    assert ds.lengths == [len(ids_reais)]


def test_dataset_trunca_textos_longos(tokenizer):
    texto = "Era uma vez uma notícia muito comprida. " * 30
    ds = FakeNewsDataset([{"texto": texto, "rotulo": 0, "par": 1}], tokenizer, max_length=12)
    assert ds[0][0].tolist() == tokenizer.encode(texto)[:12]
    assert ds.lengths[0] == len(tokenizer.encode(texto)) > 12


def test_dataset_nunca_produz_o_id_de_preenchimento_no_texto(tokenizer):
    ds = FakeNewsDataset([{"texto": "fim <|endoftext|> e mais", "rotulo": 0, "par": 1}], tokenizer, max_length=30)
    ids = ds[0][0].tolist()
    n_reais = ds.lengths[0]
    assert PAD not in ids[:n_reais] and ids[n_reais:] == [PAD] * (30 - n_reais)


def test_dataset_recusa_texto_vazio(tokenizer):
    with pytest.raises(ValueError, match="vazio"):
        FakeNewsDataset([{"texto": "", "rotulo": 0, "par": 3}], tokenizer, max_length=8)


# ----------------------------------------------------------------------------------------------------------------
# Cabeça de classificação, perda e treino


def test_ultimo_token_real_nao_depende_do_preenchimento(classificador):
    reais = torch.tensor([[464, 1181, 318, 257, 3303]])
    preenchido = torch.cat([reais, torch.full((1, 6), PAD)], dim=1)
    with torch.no_grad():
        esperado = classificador(reais)[:, -1, :]
        assert classifier_logits(classificador, preenchido).shape == (1, 2)
        assert torch.allclose(classifier_logits(classificador, preenchido), esperado, atol=1e-6)


def test_add_classification_head_congela_o_que_deve():
    torch.manual_seed(0)
    treinaveis = {}
    for opcao in ("head", "last_block", "all"):
        modelo = add_classification_head(GPTModel(CONFIG_PEQUENA), trainable=opcao)
        assert modelo.out_head.out_features == 2
        treinaveis[opcao] = {nome for nome, p in modelo.named_parameters() if p.requires_grad}
    assert treinaveis["head"] == {"out_head.weight", "out_head.bias"}
    ultimo = CONFIG_PEQUENA["n_layers"] - 1
    assert all(n.startswith((f"trf_blocks.{ultimo}.", "final_norm.", "out_head.")) for n in treinaveis["last_block"])
    assert "final_norm.scale" in treinaveis["last_block"] and "tok_emb.weight" not in treinaveis["last_block"]
    assert "tok_emb.weight" in treinaveis["all"]
    with pytest.raises(ValueError, match="não existe"):
        add_classification_head(GPTModel(CONFIG_PEQUENA), trainable="metade")


def test_perda_e_acuracia_de_classificacao(classificador):
    entrada = torch.tensor([[10, 20, 30, PAD], [40, 50, PAD, PAD]])
    alvo = torch.tensor([1, 0])
    with torch.no_grad():
        logits = torch.stack([classificador(entrada[:1, :3])[0, -1], classificador(entrada[1:, :2])[0, -1]])
        perda = calc_loss_batch_classifier(entrada, alvo, classificador, "cpu")
    assert torch.allclose(perda, torch.nn.functional.cross_entropy(logits, alvo), atol=1e-6)
    loader = torch.utils.data.DataLoader(list(zip(entrada, alvo)), batch_size=2)
    assert calc_accuracy_loader(loader, classificador, "cpu") == (logits.argmax(-1) == alvo).float().mean().item()


def test_train_classifier_simple_aprende_uma_regra_facil(tokenizer, capsys):
    torch.manual_seed(0)
    exemplos = [{"texto": ("Urgente! " if r else "Segundo a nota, ") + f"caso {i}", "rotulo": r, "par": i}
                for i in range(32) for r in (0, 1)]
    ds = FakeNewsDataset(exemplos, tokenizer, max_length=8)
    loader = torch.utils.data.DataLoader(ds, batch_size=8, shuffle=True)
    modelo = add_classification_head(GPTModel(CONFIG_PEQUENA))
    otimizador = torch.optim.AdamW(modelo.parameters(), lr=5e-3)
    historico = train_classifier_simple(modelo, loader, loader, otimizador, "cpu", num_epochs=3, eval_freq=4,
                                        eval_iter=2)
    assert len({len(lista) for lista in historico}) == 1 and len(historico[0]) == 6
    assert historico[4] == sorted(historico[4])
    assert calc_accuracy_loader(loader, modelo, "cpu") == 1.0
    saida = capsys.readouterr()
    assert "época 3: acurácia na validação inteira 100.0%" in saida.out + saida.err


# ----------------------------------------------------------------------------------------------------------------
# classify_text


def test_classify_text_recusa_texto_vazio(classificador, tokenizer):
    for vazio in ("", "   \n\t"):
        with pytest.raises(ValueError, match="vazio"):
            classify_text(vazio, classificador, tokenizer, "cpu", max_length=16)
    with pytest.raises(TypeError, match="str"):
        classify_text(None, classificador, tokenizer, "cpu", max_length=16)


def test_classify_text_trunca_e_avisa(classificador, tokenizer, capsys):
    texto = "Uma notícia comprida demais para o contexto. " * 10
    classe, prob = classify_text(texto, classificador, tokenizer, "cpu", max_length=512)
    assert "lê só os primeiros 16" in capsys.readouterr().out
    assert classe in FAKEBR_LABELS and 0.5 <= prob <= 1.0
    ids = tokenizer.encode(texto)[:16]
    with torch.no_grad():
        probs = torch.softmax(classificador(torch.tensor([ids]))[0, -1], dim=-1)
    assert classe == FAKEBR_LABELS[int(probs.argmax())] and prob == pytest.approx(probs.max().item(), abs=1e-6)


# ----------------------------------------------------------------------------------------------------------------
# O zip do Fake.br: conferido pelo conteúdo


def escrever_zip(caminho, n_por_rotulo: int = 3600, metodo=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(caminho, "w", metodo) as z:
        for pasta in ("fake", "true"):
            for n in range(1, n_por_rotulo + 1):
                z.writestr(f"Fake.br-Corpus-master/size_normalized_texts/{pasta}/{n}.txt",
                           f"Texto {pasta} {n}.\r\nSegunda linha.\r\n")
    return caminho


@pytest.fixture
def pastas(tmp_path, monkeypatch):
    espelho, cache = tmp_path / "espelho", tmp_path / "cache"
    espelho.mkdir()
    monkeypatch.setenv("LLM_DADOS_ESPELHO", str(espelho))
    monkeypatch.setenv("LLM_CACHE_DIR", str(cache))
    return espelho, cache


def test_load_fakebr_le_um_zip_completo(pastas):
    espelho, cache = pastas
    escrever_zip(espelho / "Fake.br-Corpus-master.zip")
    exemplos = load_fakebr()
    assert len(exemplos) == 7200 and sum(e["rotulo"] for e in exemplos) == 3600
    assert exemplos[0] == {"texto": "Texto fake 1.\nSegunda linha.", "rotulo": 1, "par": 1}
    assert exemplos[1] == {"texto": "Texto true 1.\nSegunda linha.", "rotulo": 0, "par": 1}
    assert (cache / "Fake.br-Corpus-master.zip").is_file()


def test_load_fakebr_recusa_zip_incompleto(pastas):
    espelho, cache = pastas
    escrever_zip(espelho / "Fake.br-Corpus-master.zip", n_por_rotulo=5)
    with pytest.raises(DownloadError, match="esperava 3600 textos falsos e 3600 verdadeiros .* encontrei 5 e 5: "
                                            "o zip está incompleto"):
        load_fakebr()
    assert not (cache / "Fake.br-Corpus-master.zip").exists()


def test_load_fakebr_recusa_textos_sem_par(pastas):
    espelho, _ = pastas
    with zipfile.ZipFile(espelho / "Fake.br-Corpus-master.zip", "w") as z:
        for pasta, inicio in (("fake", 1), ("true", 2)):
            for n in range(inicio, inicio + 3600):
                z.writestr(f"Fake.br-Corpus-master/size_normalized_texts/{pasta}/{n}.txt", "texto")
    with pytest.raises(DownloadError, match=r"não formam pares \(números sem par: \[1, 3601\]\)"):
        load_fakebr()


def test_load_fakebr_recusa_arquivo_que_nao_e_zip(pastas):
    espelho, cache = pastas
    (espelho / "Fake.br-Corpus-master.zip").write_bytes(b"<html>limite de downloads excedido</html>")
    with pytest.raises(DownloadError, match="não é um arquivo zip válido"):
        load_fakebr()
    assert not (cache / "Fake.br-Corpus-master.zip").exists()


def test_load_fakebr_recusa_zip_com_conteudo_corrompido(pastas):
    espelho, _ = pastas
    caminho = escrever_zip(espelho / "Fake.br-Corpus-master.zip", metodo=zipfile.ZIP_STORED)
    dados = bytearray(caminho.read_bytes())
    posicao = dados.index(b"Texto true 77.")
    dados[posicao] = ord("X")       # muda um byte do conteúdo: o CRC não confere mais
    caminho.write_bytes(bytes(dados))
    with pytest.raises(DownloadError, match="corrompido"):
        load_fakebr()


# ----------------------------------------------------------------------------------------------------------------
# LoRA


def test_linear_with_lora_com_b_zero_e_exatamente_a_camada_base():
    torch.manual_seed(0)
    base = torch.nn.Linear(12, 7)
    camada = LinearWithLoRA(base, rank=3, alpha=6)
    x = torch.randn(4, 5, 12)
    assert camada.lora.A.shape == (12, 3) and camada.lora.B.shape == (3, 7)
    assert torch.count_nonzero(camada.lora.B) == 0 and torch.count_nonzero(camada.lora.A) > 0
    assert torch.equal(camada(x), base(x))
    assert not base.weight.requires_grad and not base.bias.requires_grad


def test_lora_layer_calcula_alpha_sobre_r_vezes_x_a_b():
    torch.manual_seed(0)
    lora = LoRALayer(6, 5, rank=2, alpha=8)
    with torch.no_grad():
        lora.B.normal_()
    x = torch.randn(3, 6)
    assert torch.allclose(lora(x), 4.0 * x @ lora.A @ lora.B, atol=1e-6)
    base = torch.nn.Linear(6, 5)
    camada = LinearWithLoRA(base, rank=2, alpha=8)
    camada.lora = lora
    peso_efetivo = base.weight.T + 4.0 * lora.A @ lora.B          # W + (alpha/r)·A·B, no formato (in, out)
    assert torch.allclose(camada(x), x @ peso_efetivo + base.bias, atol=1e-5)
    with pytest.raises(ValueError, match="rank"):
        LoRALayer(6, 5, rank=0, alpha=1)


def modelo_lora(rank: int = 4, alpha: float = 8):
    torch.manual_seed(0)
    modelo = add_classification_head(GPTModel(CONFIG_PEQUENA), num_classes=2, trainable="all")
    return replace_linear_with_lora(modelo, rank=rank, alpha=alpha)


def test_replace_linear_with_lora_conta_treinaveis_pela_formula():
    rank = 4
    modelo = modelo_lora(rank)
    d, n_blocos = CONFIG_PEQUENA["emb_dim"], CONFIG_PEQUENA["n_layers"]
    # por bloco: W_query, W_key, W_value, out_proj (d -> d) e o FeedForward (d -> 4d, 4d -> d)
    por_bloco = 4 * rank * (d + d) + rank * (d + 4 * d) + rank * (4 * d + d)
    cabeca = d * 2 + 2
    treinaveis = sum(p.numel() for p in modelo.parameters() if p.requires_grad)
    assert treinaveis == n_blocos * por_bloco + cabeca
    assert sum(isinstance(m, LinearWithLoRA) for m in modelo.modules()) == 6 * n_blocos
    nomes = {nome for nome, p in modelo.named_parameters() if p.requires_grad}
    assert nomes >= {"out_head.weight", "out_head.bias"}
    assert all(n.startswith("out_head.") or n.endswith(("lora.A", "lora.B")) for n in nomes)
    with pytest.raises(ValueError, match="já tem camadas LoRA"):
        replace_linear_with_lora(modelo, rank=rank, alpha=8)


def test_replace_linear_with_lora_nao_muda_a_saida_antes_do_treino():
    torch.manual_seed(0)
    original = add_classification_head(GPTModel(CONFIG_PEQUENA), num_classes=2).eval()
    entrada = torch.randint(0, 50257, (2, 10))
    with torch.no_grad():
        esperado = original(entrada)
        com_lora = replace_linear_with_lora(original, rank=2, alpha=4)
        assert torch.allclose(com_lora(entrada), esperado, atol=1e-6)


def test_um_passo_do_otimizador_so_muda_a_b_e_a_cabeca():
    modelo = modelo_lora()
    antes = {nome: p.detach().clone() for nome, p in modelo.named_parameters()}
    # o otimizador recebe TODOS os parâmetros: só não mudam os que o congelamento deixou sem gradiente
    otimizador = torch.optim.AdamW(modelo.parameters(), lr=1e-2, weight_decay=0.0)
    entrada, alvo = torch.randint(0, 50256, (4, 8)), torch.tensor([0, 1, 0, 1])

    def passo():
        otimizador.zero_grad()
        calc_loss_batch_classifier(entrada, alvo, modelo, "cpu").backward()
        otimizador.step()
        return {nome for nome, p in modelo.named_parameters() if not torch.equal(p, antes[nome])}

    mudaram = passo()
    loras_b = {nome for nome, _ in modelo.named_parameters() if nome.endswith("lora.B")}
    loras_a = {nome for nome, _ in modelo.named_parameters() if nome.endswith("lora.A")}
    # no primeiro passo B = 0, então o gradiente de A é zero: mudam B e a cabeça, e nada mais
    assert mudaram == loras_b | {"out_head.weight", "out_head.bias"}
    assert all(torch.count_nonzero(p.grad) == 0 for nome, p in modelo.named_parameters() if nome in loras_a)
    # no segundo, B já não é zero e A também aprende; os pesos originais seguem intactos
    assert passo() == loras_a | loras_b | {"out_head.weight", "out_head.bias"}
