"""Testes do capítulo 06: dados do Fake.br, divisão por par, normalização de espaços, dataset, cabeça de
classificação e pooling, grupos de taxas, laço com parada antecipada, classify_text e LoRA."""
import inspect
import os
import zipfile

import pytest
import torch

from llm_do_zero.oficina import DownloadError
from llm_do_zero.gpt import GPTModel
from llm_do_zero.tokens import course_tokenizer
from llm_do_zero import finetuning
from llm_do_zero.finetuning import (
    add_classification_head, calc_accuracy_loader, calc_loss_batch_classifier, classifier_logits,
    classifier_param_groups, classify_text, FAKEBR_LABELS, FakeNewsDataset, LinearWithLoRA, load_fakebr, LoRALayer,
    normalize_examples, normalize_spaces, POOLINGS, replace_linear_with_lora, sample_pairs, split_by_pair,
    train_classifier_simple,
)

CONFIG_PEQUENA = {"vocab_size": 8192, "context_length": 16, "emb_dim": 16, "n_heads": 2, "n_layers": 2,
                  "drop_rate": 0.0, "qkv_bias": False}


@pytest.fixture(scope="module")
def tokenizer():
    return course_tokenizer()


class TokenizadorDeMentira:
    """Um tokenizador mínimo com outro id de fim de texto: um caractere = um token (código do caractere % 50)."""

    eot_token = 77

    def encode(self, texto, disallowed_special=()):
        return [ord(c) % 50 for c in texto]


PAD = course_tokenizer().eot_token      # 8191: o <|endoftext|> do tokenizador do curso


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
# Normalização de espaços


def test_normalize_spaces_troca_qualquer_sequencia_de_espacos_por_um():
    assert normalize_spaces("  Título.  Corpo\n\n do\ttexto \r\n ") == "Título. Corpo do texto"
    assert normalize_spaces("sem nada a mudar") == "sem nada a mudar"
    assert normalize_spaces(" \n\t ") == ""


@pytest.mark.parametrize("semente", range(5))
def test_normalize_spaces_propriedades_em_texto_aleatorio(semente):
    gerador = torch.Generator().manual_seed(semente)
    alfabeto = list("ab ç.\"!\n\t") + ["  ", "\u00a0"]
    texto = "".join(alfabeto[i] for i in torch.randint(len(alfabeto), (300,), generator=gerador).tolist())
    limpo = normalize_spaces(texto)
    assert "  " not in limpo and "\n" not in limpo and "\t" not in limpo and "\u00a0" not in limpo
    assert limpo == limpo.strip() and normalize_spaces(limpo) == limpo            # idempotente
    assert "".join(limpo.split()) == "".join(texto.split())                       # só espaços mudam


def test_normalize_examples_nao_altera_os_originais():
    originais = [{"texto": "a  b", "rotulo": 1, "par": 4}]
    assert normalize_examples(originais) == [{"texto": "a b", "rotulo": 1, "par": 4}]
    assert originais == [{"texto": "a  b", "rotulo": 1, "par": 4}]


@pytest.mark.skipif(not os.environ.get("LLM_DADOS_ESPELHO"), reason="precisa do espelho local dos dados")
def test_corpus_normalizado_perde_o_atalho_do_espaco_duplo():
    noticias = load_fakebr()
    teste = split_by_pair(noticias)[2]
    regra = [int("  " in e["texto"][:300]) == e["rotulo"] for e in teste]
    assert sum(regra) / len(regra) > 0.9                       # o atalho existe no texto original...
    limpas = normalize_examples(noticias)
    assert not any("  " in e["texto"] or "\n" in e["texto"] for e in limpas)   # ...e some no normalizado
    assert [e["rotulo"] for e in limpas] == [e["rotulo"] for e in noticias]


# ----------------------------------------------------------------------------------------------------------------
# Dataset: truncar e preencher com o <|endoftext|> do tokenizador


def test_dataset_preenche_com_o_fim_de_texto_do_tokenizador(tokenizer):
    texto = "O Senado aprovou a proposta."
    ids_reais = tokenizer.encode(texto)
    ds = FakeNewsDataset([{"texto": texto, "rotulo": 1, "par": 1}], tokenizer, max_length=20)
    ids, rotulo = ds[0]
    assert ds.pad_token_id == tokenizer.eot_token
    assert ids.shape == (20,) and rotulo.item() == 1
    assert ids[:len(ids_reais)].tolist() == ids_reais
    assert ids[len(ids_reais):].tolist() == [tokenizer.eot_token] * (20 - len(ids_reais))
    assert ds.lengths == [len(ids_reais)]


def test_dataset_usa_o_id_de_outro_tokenizador():
    ds = FakeNewsDataset([{"texto": "abc", "rotulo": 0, "par": 1}], TokenizadorDeMentira(), max_length=6)
    assert ds.pad_token_id == 77
    assert ds[0][0].tolist() == [ord("a") % 50, ord("b") % 50, ord("c") % 50, 77, 77, 77]


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
# Cabeça de classificação e pooling


def test_funcoes_de_classificacao_nao_tem_id_de_preenchimento_padrao():
    for nome in ("classifier_logits", "calc_loss_batch_classifier", "calc_loss_loader_classifier",
                 "calc_accuracy_loader", "evaluate_classifier", "train_classifier_simple"):
        parametro = inspect.signature(getattr(finetuning, nome)).parameters["pad_token_id"]
        assert parametro.default is inspect.Parameter.empty, nome
    assert "pad_token_id" not in inspect.signature(FakeNewsDataset).parameters      # vem do tokenizador
    assert "pad_token_id" not in inspect.signature(classify_text).parameters


LOTE = torch.tensor([[464, 1181, 318, 257, 3303, PAD, PAD, PAD],
                     [12, 901, PAD, PAD, PAD, PAD, PAD, PAD],
                     [5, 6, 7, 8, 9, 10, 11, 12]])


def test_pooling_ultimo_token_le_a_ultima_posicao_real(classificador):
    with torch.no_grad():
        obtido = classifier_logits(classificador, LOTE, PAD, "last")
        assert obtido.shape == (3, 2)
        for i, n in enumerate((5, 2, 8)):
            esperado = classificador(LOTE[i:i + 1, :n])[0, -1]
            assert torch.allclose(obtido[i], esperado, atol=1e-6)
    assert torch.equal(classifier_logits(classificador, LOTE, PAD), obtido)   # "last" é o padrão


def test_pooling_media_ignora_o_preenchimento(classificador):
    with torch.no_grad():
        obtido = classifier_logits(classificador, LOTE, PAD, "mean")
        for i, n in enumerate((5, 2, 8)):
            esperado = classificador(LOTE[i:i + 1, :n])[0].mean(dim=0)
            assert torch.allclose(obtido[i], esperado, atol=1e-6)
        # a média dos logits é a cabeça aplicada à média dos vetores (a cabeça é linear)
        cabeca, classificador.out_head = classificador.out_head, torch.nn.Identity()
        vetores = classificador(LOTE[:1, :5])[0]
        classificador.out_head = cabeca
        assert torch.allclose(obtido[0], cabeca(vetores.mean(dim=0)), atol=1e-6)


def test_pooling_primeiro_token_so_depende_do_primeiro_token(classificador):
    outro = LOTE.clone()
    outro[:, 1:] = torch.randint(0, PAD, outro[:, 1:].shape)
    with torch.no_grad():
        primeiro = classifier_logits(classificador, LOTE, PAD, "first")
        assert torch.allclose(primeiro, classifier_logits(classificador, outro, PAD, "first"), atol=1e-6)
        assert torch.allclose(primeiro, classifier_logits(classificador, LOTE[:, :1], PAD, "first"), atol=1e-6)
        assert not torch.allclose(primeiro, classifier_logits(classificador, LOTE, PAD, "last"), atol=1e-4)
    with pytest.raises(ValueError, match="não existe"):
        classifier_logits(classificador, LOTE, PAD, "max")
    assert POOLINGS == ("last", "first", "mean")


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


@pytest.mark.parametrize("pooling", POOLINGS)
def test_perda_e_acuracia_de_classificacao(classificador, pooling):
    entrada = torch.tensor([[10, 20, 30, PAD], [40, 50, PAD, PAD]])
    alvo = torch.tensor([1, 0])
    with torch.no_grad():
        logits = classifier_logits(classificador, entrada, PAD, pooling)
        perda = calc_loss_batch_classifier(entrada, alvo, classificador, "cpu", pad_token_id=PAD, pooling=pooling)
    assert torch.allclose(perda, torch.nn.functional.cross_entropy(logits, alvo), atol=1e-6)
    loader = torch.utils.data.DataLoader(list(zip(entrada, alvo)), batch_size=2)
    acuracia = calc_accuracy_loader(loader, classificador, "cpu", pad_token_id=PAD, pooling=pooling)
    assert acuracia == (logits.argmax(-1) == alvo).float().mean().item()


# ----------------------------------------------------------------------------------------------------------------
# Grupos de taxas e o laço de fine-tuning


def test_classifier_param_groups_separa_embeddings_e_cabeca():
    torch.manual_seed(0)
    modelo = add_classification_head(GPTModel(CONFIG_PEQUENA), trainable="all")
    lento, rapido = classifier_param_groups(modelo, lr=1e-3, fast_lr=1e-2)
    assert (lento["lr"], rapido["lr"]) == (1e-3, 1e-2)
    ids_rapidos = {id(p) for p in rapido["params"]}
    assert ids_rapidos == {id(modelo.tok_emb.weight), id(modelo.out_head.weight), id(modelo.out_head.bias)}
    todos = [id(p) for p in lento["params"]] + list(ids_rapidos)
    assert sorted(todos) == sorted(id(p) for p in modelo.parameters()) and len(set(todos)) == len(todos)
    assert [g["lr"] for g in classifier_param_groups(modelo, lr=3e-4)] == [3e-4, 3e-4]


def test_classifier_param_groups_deixa_de_fora_o_que_esta_congelado():
    torch.manual_seed(0)
    so_bloco = add_classification_head(GPTModel(CONFIG_PEQUENA), trainable="last_block")
    grupos = classifier_param_groups(so_bloco, lr=1e-3, fast_lr=1e-2)
    assert all(p.requires_grad for g in grupos for p in g["params"])
    assert {id(p) for p in grupos[1]["params"]} == {id(p) for p in so_bloco.out_head.parameters()}
    com_lora = modelo_lora()
    lento, rapido = classifier_param_groups(com_lora, lr=1e-3, fast_lr=1e-2)
    assert {id(p) for p in rapido["params"]} == {id(p) for p in com_lora.out_head.parameters()}
    nomes_lentos = {n for n, p in com_lora.named_parameters() if id(p) in {id(q) for q in lento["params"]}}
    assert nomes_lentos and all(n.endswith(("lora.A", "lora.B")) for n in nomes_lentos)
    assert classifier_param_groups(add_classification_head(GPTModel(CONFIG_PEQUENA), trainable="head"),
                                   lr=1e-3, fast_lr=1e-2)[0]["lr"] == 1e-2     # só a cabeça: um grupo só


def dados_faceis(tokenizer, n=32):
    exemplos = [{"texto": ("Urgente! " if r else "Segundo a nota, ") + f"caso {i}", "rotulo": r, "par": i}
                for i in range(n) for r in (0, 1)]
    return FakeNewsDataset(exemplos, tokenizer, max_length=8)


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_train_classifier_simple_aprende_uma_regra_facil(tokenizer, capsys, pooling):
    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(dados_faceis(tokenizer), batch_size=8, shuffle=True)
    modelo = add_classification_head(GPTModel(CONFIG_PEQUENA))
    otimizador = torch.optim.AdamW(modelo.parameters(), lr=5e-3)
    historico = train_classifier_simple(modelo, loader, loader, otimizador, "cpu", num_epochs=3, eval_freq=4,
                                        eval_iter=2, pad_token_id=PAD, pooling=pooling)
    # 3 épocas de 8 lotes = 24 passos; avalia depois dos passos 1, 5, 9, 13, 17, 21 e do último (24)
    assert len(historico) == 6 and len({len(lista) for lista in historico[:5]}) == 1 and len(historico[0]) == 7
    assert historico[4] == sorted(historico[4])
    assert len(historico[5]) == 3 and historico[5][-1] == 1.0
    assert calc_accuracy_loader(loader, modelo, "cpu", pad_token_id=PAD, pooling=pooling) == 1.0
    saida = capsys.readouterr()
    assert "época 3: acurácia na validação inteira 100.0%" in saida.out + saida.err


class OtimizadorContador:
    """AdamW que conta quantas vezes deu um passo."""

    def __init__(self, modelo):
        self.adamw, self.passos = torch.optim.AdamW(modelo.parameters(), lr=1e-3), 0

    def zero_grad(self):
        self.adamw.zero_grad()

    def step(self):
        self.passos += 1
        self.adamw.step()


@pytest.mark.parametrize("max_steps, epocas_medidas", [(3, 1), (6, 2), (5, 2), (None, 3)])
def test_max_steps_encerra_o_treino_e_mede_a_epoca_interrompida(tokenizer, max_steps, epocas_medidas):
    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(dados_faceis(tokenizer, n=16), batch_size=8)   # 4 lotes por época
    modelo = add_classification_head(GPTModel(CONFIG_PEQUENA))
    otimizador = OtimizadorContador(modelo)
    historico = train_classifier_simple(modelo, loader, loader, otimizador, "cpu", num_epochs=3, eval_freq=2,
                                        eval_iter=1, pad_token_id=PAD, max_steps=max_steps)
    passos = 12 if max_steps is None else max_steps
    assert otimizador.passos == passos
    avaliados = sorted({*range(1, passos + 1, 2), passos})                    # passos 1, 3, 5… e o último
    assert historico[4] == [8 * passo for passo in avaliados]
    assert len(historico[5]) == epocas_medidas


class Sabotador:
    """Otimiza normalmente por `passos_bons` passos; depois inverte a cabeça (as previsões se invertem)."""

    def __init__(self, modelo, passos_bons):
        self.modelo, self.passos_bons, self.passos = modelo, passos_bons, 0
        self.adamw = torch.optim.AdamW(modelo.parameters(), lr=5e-3)

    def zero_grad(self):
        self.adamw.zero_grad()

    def step(self):
        self.passos += 1
        if self.passos <= self.passos_bons:
            self.adamw.step()
            self.boa = [p.detach().clone() for p in self.modelo.out_head.parameters()]
        else:
            with torch.no_grad():
                for p, bom in zip(self.modelo.out_head.parameters(), self.boa):
                    p.copy_(-bom)


@pytest.mark.parametrize("keep_best", [True, False])
def test_keep_best_devolve_os_pesos_da_melhor_epoca(tokenizer, keep_best):
    torch.manual_seed(0)
    dados = dados_faceis(tokenizer)
    loader = torch.utils.data.DataLoader(dados, batch_size=8, shuffle=True)
    modelo = add_classification_head(GPTModel(CONFIG_PEQUENA))
    passos_por_epoca = len(loader)
    historico = train_classifier_simple(modelo, loader, loader, Sabotador(modelo, 4 * passos_por_epoca), "cpu",
                                        num_epochs=5, eval_freq=100, eval_iter=1, pad_token_id=PAD,
                                        keep_best=keep_best)
    por_epoca = historico[5]
    assert por_epoca[3] == 1.0 and por_epoca[4] == 0.0          # a quinta época estragou tudo
    final = calc_accuracy_loader(torch.utils.data.DataLoader(dados, batch_size=64), modelo, "cpu", pad_token_id=PAD)
    assert final == (1.0 if keep_best else 0.0)


# ----------------------------------------------------------------------------------------------------------------
# classify_text


def test_classify_text_recusa_texto_vazio(classificador, tokenizer):
    for vazio in ("", "   \n\t"):
        with pytest.raises(ValueError, match="vazio"):
            classify_text(vazio, classificador, tokenizer, "cpu", max_length=16)
    with pytest.raises(TypeError, match="str"):
        classify_text(None, classificador, tokenizer, "cpu", max_length=16)


@pytest.mark.parametrize("pooling", POOLINGS)
def test_classify_text_trunca_avisa_e_usa_o_pooling(classificador, tokenizer, capsys, pooling):
    texto = "Uma notícia comprida demais para o contexto. " * 10
    classe, prob = classify_text(texto, classificador, tokenizer, "cpu", max_length=512, pooling=pooling)
    assert "lê só os primeiros 16" in capsys.readouterr().out
    assert classe in FAKEBR_LABELS and 0.5 <= prob <= 1.0
    ids = torch.tensor([tokenizer.encode(normalize_spaces(texto))[:16]])
    with torch.no_grad():
        probs = torch.softmax(classifier_logits(classificador, ids, PAD, pooling)[0], dim=-1)
    assert classe == FAKEBR_LABELS[int(probs.argmax())] and prob == pytest.approx(probs.max().item(), abs=1e-6)


def test_classify_text_normaliza_os_espacos_e_preenche_com_o_tokenizador(classificador, tokenizer):
    limpo = classify_text("Governo anuncia vacinação. O ministério", classificador, tokenizer, "cpu", 16, "mean")
    sujo = classify_text("Governo anuncia vacinação.  O\nministério ", classificador, tokenizer, "cpu", 16, "mean")
    assert sujo == limpo
    curto = "Urgente!"
    ids = tokenizer.encode(curto)
    preenchido = torch.tensor([ids + [tokenizer.eot_token] * (16 - len(ids))])
    with torch.no_grad():
        esperado = torch.softmax(classificador(torch.tensor([ids]))[0, -1], dim=-1)
        assert torch.allclose(classifier_logits(classificador, preenchido, PAD)[0].softmax(-1), esperado, atol=1e-6)
    assert classify_text(curto, classificador, tokenizer, "cpu", 16)[1] == pytest.approx(esperado.max().item(),
                                                                                        abs=1e-6)


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
    entrada = torch.randint(0, CONFIG_PEQUENA["vocab_size"], (2, 10))
    with torch.no_grad():
        esperado = original(entrada)
        com_lora = replace_linear_with_lora(original, rank=2, alpha=4)
        assert torch.allclose(com_lora(entrada), esperado, atol=1e-6)


def test_um_passo_do_otimizador_so_muda_a_b_e_a_cabeca():
    modelo = modelo_lora()
    antes = {nome: p.detach().clone() for nome, p in modelo.named_parameters()}
    # o otimizador recebe TODOS os parâmetros: só não mudam os que o congelamento deixou sem gradiente
    otimizador = torch.optim.AdamW(modelo.parameters(), lr=1e-2, weight_decay=0.0)
    entrada, alvo = torch.randint(0, PAD, (4, 8)), torch.tensor([0, 1, 0, 1])

    def passo():
        otimizador.zero_grad()
        calc_loss_batch_classifier(entrada, alvo, modelo, "cpu", pad_token_id=PAD).backward()
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
