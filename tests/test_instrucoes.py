"""Testes do capítulo 07: conjunto de instruções (e o teste de redações novas), formato do prompt, collate,
geração e avaliação, linhas de base e o checkpoint com o tokenizador."""
import collections
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import llm_do_zero.instrucoes as instrucoes
from llm_do_zero.estatistica import wilson_interval
from llm_do_zero.gpt import GPTModel
from llm_do_zero.pretreino import calc_loss_batch, load_checkpoint, save_checkpoint, tokenizer_state
from llm_do_zero.tokens import course_tokenizer
from llm_do_zero.instrucoes import (
    answer_options, build_prompt, calc_loss_batch_masked, chance_score, create_instruction_dataloader,
    custom_collate_fn, exact_match, extract_response, format_input, generate_response,
    instruction_checkpoint_path, instruction_data_path, INSTRUCTION_SETTINGS, InstructionDataset,
    load_instruction_model, load_instruction_splits, load_new_template_test, majority_results, NEW_TEMPLATES_SPLIT,
    normalize_answer, OPEN_TASK, pick_shots, RESPONSE_HEADER, score_by_task, tokenize_example,
)

PASTA_DADOS = Path(__file__).resolve().parent.parent / "07-instrucoes" / "dados"
ARQUIVO = PASTA_DADOS / "instrucoes.json"


@pytest.fixture(scope="module")
def tokenizer():
    return course_tokenizer()


@pytest.fixture(scope="module")
def mini(tokenizer):
    return {"vocab_size": tokenizer.n_vocab, "context_length": 64, "emb_dim": 16, "n_heads": 2, "n_layers": 1,
            "drop_rate": 0.0, "qkv_bias": False}


@pytest.fixture(scope="module")
def splits():
    return load_instruction_splits(ARQUIVO)


@pytest.fixture(scope="module")
def novas():
    return load_new_template_test(ARQUIVO)


@pytest.fixture(scope="module")
def gerador():
    spec = importlib.util.spec_from_file_location("gerar_instrucoes", PASTA_DADOS / "gerar_instrucoes.py")
    modulo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(modulo)
    return modulo


# ---------------------------------------------------------------- o conjunto de instruções

def test_gerador_reproduz_o_arquivo_byte_a_byte(tmp_path):
    destino = tmp_path / "instrucoes.json"
    subprocess.run([sys.executable, str(PASTA_DADOS / "gerar_instrucoes.py"), "--saida", str(destino)],
                   check=True, capture_output=True)
    assert destino.read_bytes() == ARQUIVO.read_bytes()


def test_o_caminho_padrao_e_o_arquivo_do_repositorio(monkeypatch):
    monkeypatch.chdir(PASTA_DADOS.parent)
    assert instruction_data_path().resolve() == ARQUIVO.resolve()


def test_tamanho_e_chaves_do_conjunto(splits, novas):
    todos = [e for parte in splits for e in parte] + novas
    assert len([e for e in todos if e["tarefa"] != OPEN_TASK]) >= 1100
    assert len([e for e in todos if e["tarefa"] == OPEN_TASK]) >= 100
    for e in todos:
        assert set(e) == {"instrucao", "entrada", "saida", "tarefa", "particao"}
        assert e["instrucao"].strip() and e["saida"].strip()
    assert {e["particao"] for e in todos} == {"treino", "validacao", "teste", NEW_TEMPLATES_SPLIT}


def test_nenhum_exemplo_repetido_entre_particoes(splits, novas):
    chaves = [{(e["instrucao"], e["entrada"]) for e in parte} for parte in (*splits, novas)]
    for i in range(len(chaves)):
        for j in range(i + 1, len(chaves)):
            assert not chaves[i] & chaves[j], (i, j)
    assert sum(len(c) for c in chaves) == sum(len(p) for p in (*splits, novas))   # nem dentro de uma partição


def test_particoes_estratificadas_e_tarefas_equilibradas(splits):
    treino, validacao, teste = splits
    verificaveis = [e for e in teste if e["tarefa"] != OPEN_TASK]
    por_tarefa = collections.Counter(e["tarefa"] for e in verificaveis)
    assert len(por_tarefa) >= 6
    assert max(por_tarefa.values()) / len(verificaveis) <= 0.25
    total = len(treino) + len(validacao) + len(teste)
    assert 0.08 <= len(teste) / total <= 0.12 and 0.04 <= len(validacao) / total <= 0.06
    for tarefa in por_tarefa:
        assert any(e["tarefa"] == tarefa for e in treino) and any(e["tarefa"] == tarefa for e in validacao)


def _numeros(e):
    return tuple(int(n) for n in re.findall(r"\d+", e["instrucao"] + " " + e["entrada"]))


def test_o_teste_mede_generalizacao(splits):
    treino, _, teste = splits

    def por_tarefa(dados, t):
        return [e for e in dados if e["tarefa"] == t]

    # fatos: a resposta foi vista no treino, mas nunca com aquela redação
    for t in ("capital", "antonimo", "categoria"):
        respostas = {e["saida"] for e in por_tarefa(treino, t)}
        assert all(e["saida"] in respostas for e in por_tarefa(teste, t))
    # plural: substantivos do teste nunca vistos no treino
    vistos = {e["saida"] for e in por_tarefa(treino, "plural")}
    assert not {e["saida"] for e in por_tarefa(teste, "plural")} & vistos
    # primeira palavra: listas novas, abertas por palavras que o treino já deu como resposta
    listas = {e["entrada"] for e in por_tarefa(treino, "primeira_palavra")}
    respostas = {e["saida"] for e in por_tarefa(treino, "primeira_palavra")}
    for e in por_tarefa(teste, "primeira_palavra"):
        assert e["entrada"] not in listas and e["saida"] in respostas
    # maior número: pares nunca comparados no treino, em nenhuma ordem
    pares = {frozenset(_numeros(e)) for e in por_tarefa(treino, "maior_numero")}
    assert not {frozenset(_numeros(e)) for e in por_tarefa(teste, "maior_numero")} & pares
    # soma: a conta do teste nunca apareceu nessa ordem, mas a ordem inversa, sim
    contas = {_numeros(e) for e in por_tarefa(treino, "soma")}
    for e in por_tarefa(teste, "soma"):
        a, b = _numeros(e)
        assert (a, b) not in contas and (b, a) in contas and e["saida"] == str(a + b)


def _padrao(redacao: tuple[str, str]) -> tuple[re.Pattern, re.Pattern]:
    """Uma redação (instrução, entrada) com lacunas {x}, {a}... vira um par de expressões regulares."""
    def regex(modelo: str) -> re.Pattern:
        partes = re.split(r"\{\w+\}", modelo)
        return re.compile("^" + ".+".join(re.escape(p) for p in partes) + "$")
    return regex(redacao[0]), regex(redacao[1])


def _usa(e: dict, redacao: tuple[str, str]) -> bool:
    instrucao, entrada = _padrao(redacao)
    return bool(instrucao.match(e["instrucao"]) and entrada.match(e["entrada"]))


def test_redacoes_novas_nunca_aparecem_no_treino(splits, novas, gerador):
    treino, validacao, teste = splits
    assert set(gerador.REDACOES_NOVAS) == set(gerador.REDACOES)
    for tarefa, redacoes in gerador.REDACOES_NOVAS.items():
        assert len(redacoes) >= 2 and not set(redacoes) & set(gerador.REDACOES[tarefa])
        vistos = [e for e in treino + validacao + teste if e["tarefa"] == tarefa]
        for redacao in redacoes:
            assert not [e for e in vistos if _usa(e, redacao)], (tarefa, redacao)
        # e cada exemplo do teste novo usa uma redação nova, nunca uma das do treino
        for e in (e for e in novas if e["tarefa"] == tarefa):
            assert any(_usa(e, r) for r in redacoes) and not any(_usa(e, r) for r in gerador.REDACOES[tarefa])
        usadas = {r for e in novas if e["tarefa"] == tarefa for r in redacoes if _usa(e, r)}
        assert usadas == set(redacoes)                    # o rodízio usa todas


def test_redacoes_novas_pedem_os_mesmos_itens_do_teste(splits, novas):
    teste = [e for e in splits[2] if e["tarefa"] != OPEN_TASK]
    assert len(novas) == len(teste)
    for velho, novo in zip(teste, novas):
        assert (velho["tarefa"], velho["saida"]) == (novo["tarefa"], novo["saida"])
        if velho["tarefa"] in ("maior_numero", "menor_numero", "soma"):
            assert _numeros(velho) == _numeros(novo)      # os mesmos números, na mesma ordem
        if velho["tarefa"] in ("sentimento", "primeira_palavra"):
            assert velho["entrada"] == novo["entrada"]    # a mesma frase, a mesma lista


# ---------------------------------------------------------------- prompt, collate e perda

def test_format_input_com_e_sem_entrada():
    com = {"instrucao": "Resuma o texto.", "entrada": "O trem atrasou.", "saida": "Atraso."}
    sem = {"instrucao": "Qual é a capital da Bahia?", "entrada": "", "saida": "Salvador"}
    assert format_input(com, preambulo=False) == "### Instrução: Resuma o texto.\n\n### Entrada: O trem atrasou."
    assert format_input(sem, preambulo=False) == "### Instrução: Qual é a capital da Bahia?"
    com_preambulo = format_input(sem, preambulo=True)
    assert com_preambulo.startswith("Abaixo está uma instrução que descreve uma tarefa.")
    assert com_preambulo.endswith("\n\n### Instrução: Qual é a capital da Bahia?")
    assert "### Entrada" not in com_preambulo
    assert format_input(sem) == format_input(sem, preambulo=INSTRUCTION_SETTINGS["rapido"]["preambulo"])


def test_build_prompt_sem_e_com_exemplos():
    pedido = {"instrucao": "Qual é a capital da Bahia?", "entrada": "", "saida": "Salvador"}
    exemplos = [{"instrucao": "Qual é a capital do Pará?", "entrada": "", "saida": "Belém"},
                {"instrucao": "Diga a capital do Acre.", "entrada": "", "saida": "Rio Branco"}]
    for preambulo in (False, True):
        assert build_prompt(pedido, preambulo) == format_input(pedido, preambulo) + RESPONSE_HEADER
    texto = build_prompt(pedido, True, exemplos)
    assert texto.count("Abaixo está uma instrução") == 1 and texto.startswith("Abaixo está")
    assert texto.count("### Resposta:") == 3 and texto.endswith("Bahia?" + RESPONSE_HEADER)
    assert texto.index("Belém") < texto.index("Rio Branco") < texto.index("Bahia")
    assert "Salvador" not in texto


def test_collate_sem_mascara_exato():
    entradas, alvos = custom_collate_fn([([11, 12, 13, 14, 15], 3), ([21, 22], 1)], pad_token_id=99)
    assert entradas.tolist() == [[11, 12, 13, 14, 15], [21, 22, 99, 99, 99]]
    assert alvos.tolist() == [[12, 13, 14, 15, 99], [22, 99, -100, -100, -100]]
    assert entradas.dtype == alvos.dtype == torch.int64


def test_collate_com_mascara_e_corte_exato():
    lote = [([11, 12, 13, 14, 15], 3), ([21, 22], 1)]
    _, alvos = custom_collate_fn(lote, 99, mask_prompt=True)
    assert alvos.tolist() == [[-100, -100, 14, 15, 99], [22, 99, -100, -100, -100]]
    entradas, alvos = custom_collate_fn(lote, 0, allowed_max_length=3, mask_prompt=True, ignore_index=-1)
    assert entradas.tolist() == [[11, 12, 13], [21, 22, 0]]
    assert alvos.tolist() == [[-1, -1, 14], [22, 0, -1]]


def test_collate_exige_o_fim_de_texto_e_mascara_exige_tamanho_do_prompt():
    with pytest.raises(TypeError):
        custom_collate_fn([[1, 2, 3]])                  # sem pad_token_id: não há padrão do GPT-2
    entradas, alvos = custom_collate_fn([[1, 2, 3], [4]], 7)
    assert alvos.tolist() == [[2, 3, 7], [7, -100, -100]]
    with pytest.raises(ValueError, match="mask_prompt"):
        custom_collate_fn([[1, 2, 3]], 7, mask_prompt=True)


def test_o_carregador_preenche_com_o_fim_de_texto_do_tokenizador(tokenizer):
    dados = [{"instrucao": "Qual é a capital da Bahia?", "entrada": "", "saida": "Salvador"},
             {"instrucao": "Classifique a frase.", "entrada": "O filme foi muito bom, recomendo a todos.",
              "saida": "positivo"}]
    with pytest.raises(TypeError):
        create_instruction_dataloader(dados, 2)          # o tokenizador é obrigatório
    entradas, alvos = next(iter(create_instruction_dataloader(dados, 2, shuffle=False, preambulo=False,
                                                              tokenizer=tokenizer)))
    curto = len(tokenize_example(dados[0], tokenizer, preambulo=False)[0])
    assert entradas.shape[0] == 2 and entradas.shape[1] > curto
    assert set(entradas[0, curto:].tolist()) == {tokenizer.eot_token}
    assert alvos[0, curto - 1].item() == tokenizer.eot_token and set(alvos[0, curto:].tolist()) == {-100}


def test_dataset_prompt_e_prefixo_e_mascara_deixa_so_a_resposta(tokenizer):
    e = {"instrucao": "Qual é a capital da Bahia?", "entrada": "", "saida": "Salvador"}
    ids, n_prompt = tokenize_example(e, tokenizer, preambulo=False)
    assert tokenizer.decode(ids) == "### Instrução: Qual é a capital da Bahia?\n\n### Resposta: Salvador"
    assert tokenizer.decode(ids[:n_prompt]).endswith("### Resposta:")
    item = InstructionDataset([e], tokenizer, preambulo=False)[0]
    _, alvos = custom_collate_fn([item], tokenizer.eot_token, mask_prompt=True)
    contam = alvos[0][alvos[0] != -100].tolist()
    assert tokenizer.decode(contam[:-1]) == " Salvador" and contam[-1] == tokenizer.eot_token


def test_perda_ignora_menos_cem():
    torch.manual_seed(0)
    logits = torch.randn(6, 10)
    alvos = torch.tensor([1, 2, -100, 3, -100, 4])
    validos = alvos != -100
    assert torch.allclose(torch.nn.functional.cross_entropy(logits, alvos),
                          torch.nn.functional.cross_entropy(logits[validos], alvos[validos]))


def test_exemplos_cabem_no_contexto_do_modo_rapido(splits, novas, tokenizer):
    limite = INSTRUCTION_SETTINGS["rapido"]["allowed_max_length"]
    todos = [e for parte in splits for e in parte] + novas
    maior = max(len(tokenize_example(e, tokenizer, preambulo=False)[0]) for e in todos)
    assert maior + 1 <= limite


def test_perda_mascarada_igual_a_do_capitulo_05(tokenizer, splits, mini):
    torch.manual_seed(0)
    modelo = GPTModel(mini)
    lote = [InstructionDataset(splits[0][:4], tokenizer, preambulo=False)[i] for i in range(4)]
    for mascara in (True, False):
        entradas, alvos = custom_collate_fn(lote, tokenizer.eot_token, mask_prompt=mascara, allowed_max_length=64)
        esperado = calc_loss_batch(entradas, alvos, modelo, "cpu")
        assert torch.allclose(calc_loss_batch_masked(entradas, alvos, modelo, "cpu"), esperado, atol=1e-6)


# ---------------------------------------------------------------- extrair, gerar e pontuar

@pytest.mark.parametrize("previsto,esperado,estrito,sem_acentos", [
    ("Salvador.", "Salvador", True, True),
    ("  belo   horizonte ", "Belo Horizonte", True, True),
    ("Positivo!", "positivo", True, True),
    ("São Luís", "Sao Luis", False, True),
    ("maçãs", "macas", False, True),
    ("15 ou 7", "15", False, False),
    ("gatos", "gato", False, False),
    ("", "gato", False, False),
])
def test_normalizacao_e_acerto_exato(previsto, esperado, estrito, sem_acentos):
    assert exact_match(previsto, esperado) is estrito
    assert exact_match(previsto, esperado, ignore_accents=True) is sem_acentos


def test_normalize_answer_casos():
    assert normalize_answer(" «Olá,   Mundo!» ") == "olá, mundo"
    assert normalize_answer("Ação", ignore_accents=True) == "acao"
    assert normalize_answer("quarta-feira.") == "quarta-feira"


def test_extract_response_pega_a_primeira_resposta():
    assert extract_response("### Instrução: Some 2 e 3.\n\n### Resposta: 5<|endoftext|>lixo") == "5"
    assert extract_response("### Instrução: x\n\n### Resposta:  Belo Horizonte\n\n### Instrução: y") == \
        "Belo Horizonte"
    # o modelo emendou outro pedido e outra resposta: vale a primeira, não a última
    duas = "### Instrução: Some 2 e 3.\n\n### Resposta: 5\n\n### Instrução: Some 1 e 1.\n\n### Resposta: 2"
    assert extract_response(duas) == "5"
    assert extract_response("### Resposta: Recife ### Resposta: Natal") == "Recife ### Resposta: Natal"
    assert extract_response("  Salvador\nmais texto") == "Salvador"     # sem cabeçalho: a primeira linha
    assert extract_response("### Resposta:\n\nNatal\nfim") == "Natal"     # linhas vazias antes não contam


class Roteiro(torch.nn.Module):
    """Um 'modelo' que escreve um texto combinado, token a token, e depois o fim de texto."""

    def __init__(self, ids: list[int], vocab_size: int, eot: int, contexto: int = 128):
        super().__init__()
        self.pos_emb = torch.nn.Embedding(contexto, 1)
        self.ids, self.vocab_size, self.eot, self.passo = ids, vocab_size, eot, 0
        self.prompts: list[list[int]] = []

    def forward(self, idx):
        if self.passo == 0:
            self.prompts.append(idx[0].tolist())
        proximo = self.ids[self.passo] if self.passo < len(self.ids) else self.eot
        self.passo += 1
        logits = torch.zeros(idx.shape[0], idx.shape[1], self.vocab_size)
        logits[:, -1, proximo] = 1.0
        return logits


def test_generate_response_le_so_o_que_o_modelo_escreveu(tokenizer):
    pedido = {"instrucao": "Qual é a capital de Pernambuco?", "entrada": "", "saida": "Recife"}
    exemplos = [{"instrucao": "Qual é a capital do Pará?", "entrada": "", "saida": "Belém"}]
    continuacao = tokenizer.encode(" Recife\n\n### Instrução: Qual é a capital do Acre?\n\n### Resposta: Natal")
    modelo = Roteiro(continuacao, tokenizer.n_vocab, tokenizer.eot_token)
    assert generate_response(modelo, pedido, tokenizer, preambulo=False, max_new_tokens=50, shots=exemplos) == \
        "Recife"
    assert tokenizer.decode(modelo.prompts[0]) == build_prompt(pedido, False, exemplos)
    # para no fim de texto do tokenizador: com max_new_tokens de sobra, o roteiro curto acaba antes
    curto = Roteiro(tokenizer.encode(" Salvador"), tokenizer.n_vocab, tokenizer.eot_token)
    assert generate_response(curto, pedido, tokenizer, preambulo=False, max_new_tokens=50) == "Salvador"
    assert curto.passo == len(tokenizer.encode(" Salvador")) + 1


def test_score_by_task_conta_e_da_intervalos():
    resultados = [{"tarefa": "soma", "saida": "7", "resposta": "7"},
                  {"tarefa": "soma", "saida": "8", "resposta": "9"},
                  {"tarefa": "capital", "saida": "Maceió", "resposta": "Maceio"},
                  {"tarefa": OPEN_TASK, "saida": "qualquer", "resposta": "outra"}]
    nota = score_by_task(resultados)
    assert nota["por_tarefa"] == {"soma": 0.5, "capital": 0.0} and nota["geral"] == pytest.approx(1 / 3)
    assert nota["acertos"] == {"soma": 1, "capital": 0} and nota["exemplos"] == {"soma": 2, "capital": 1}
    assert nota["intervalos"]["soma"] == wilson_interval(1, 2)
    assert nota["intervalo_geral"] == wilson_interval(1, 3)
    baixo, alto = nota["intervalo_geral"]
    assert baixo < nota["geral"] < alto
    assert score_by_task(resultados, ignore_accents=True)["geral"] == pytest.approx(2 / 3)


def test_opcoes_do_palpite_as_cegas():
    respostas = {"capital": {"Recife", "Natal", "Belém"}}
    assert answer_options({"tarefa": "maior_numero", "instrucao": "Qual é o maior: 7 ou 12?", "entrada": ""},
                          respostas) == ["7", "12"]
    assert answer_options({"tarefa": "menor_numero", "instrucao": "Diga o menor.", "entrada": "3 e 20"},
                          respostas) == ["3", "20"]
    assert answer_options({"tarefa": "primeira_palavra", "instrucao": "?", "entrada": "rio, mar, céu"},
                          respostas) == ["rio", "mar", "céu"]
    assert answer_options({"tarefa": "capital", "instrucao": "?", "entrada": ""}, respostas) == \
        ["Belém", "Natal", "Recife"]


def test_linha_de_base_do_acaso(splits):
    treino, _, teste = splits
    acaso = chance_score(teste, treino)
    assert acaso["por_tarefa"]["sentimento"] == pytest.approx(0.5)
    assert acaso["por_tarefa"]["maior_numero"] == pytest.approx(0.5)     # um dos dois números
    assert acaso["por_tarefa"]["menor_numero"] == pytest.approx(0.5)
    assert acaso["por_tarefa"]["categoria"] == pytest.approx(0.2)        # cinco categorias
    assert acaso["por_tarefa"]["plural"] == 0.0                          # nenhum plural do teste foi visto
    listas = [e for e in teste if e["tarefa"] == "primeira_palavra"]
    esperado = sum(1 / len(e["entrada"].split(",")) for e in listas) / len(listas)
    assert acaso["por_tarefa"]["primeira_palavra"] == pytest.approx(esperado)
    assert OPEN_TASK not in acaso["por_tarefa"]
    assert acaso["geral"] == pytest.approx(sum(acaso["por_tarefa"].values()) / len(acaso["por_tarefa"]))


def test_linha_de_base_da_maioria(splits):
    treino, _, teste = splits
    respostas = majority_results(teste, treino)
    assert len(respostas) == len([e for e in teste if e["tarefa"] != OPEN_TASK])
    for tarefa in ("sentimento", "soma", "capital"):
        contagem = collections.Counter(e["saida"] for e in treino if e["tarefa"] == tarefa)
        mais_comum = max(contagem.values())
        for r in (r for r in respostas if r["tarefa"] == tarefa):
            assert contagem[r["resposta"]] == mais_comum
    nota = score_by_task(respostas)
    sentimento = [r for r in respostas if r["tarefa"] == "sentimento"]
    assert nota["por_tarefa"]["sentimento"] == pytest.approx(
        sum(r["saida"] == sentimento[0]["resposta"] for r in sentimento) / len(sentimento))


def test_pick_shots(splits):
    treino = splits[0]
    exemplos = pick_shots(treino, 2, seed=5)
    assert exemplos == pick_shots(treino, 2, seed=5) and exemplos != pick_shots(treino, 2, seed=6)
    assert OPEN_TASK not in exemplos and len(exemplos) == 9
    for tarefa, lista in exemplos.items():
        assert len(lista) == 2 and all(e in treino and e["tarefa"] == tarefa for e in lista)


# ---------------------------------------------------------------- checkpoint com o tokenizador

def test_caminho_do_checkpoint(monkeypatch, tmp_path):
    monkeypatch.setenv("LLM_ARTEFATOS", str(tmp_path))
    assert instruction_checkpoint_path("rapido") == tmp_path / "checkpoints" / "07-instrucoes-rapido.pt"


def test_load_instruction_model_usa_o_checkpoint_e_o_tokenizador(monkeypatch, tmp_path, tokenizer, mini):
    monkeypatch.setenv("LLM_ARTEFATOS", str(tmp_path))
    torch.manual_seed(0)
    original = GPTModel(mini).eval()
    save_checkpoint(instruction_checkpoint_path("rapido"), original, None, mini,
                    tokenizer=tokenizer_state(tokenizer), formato_prompt={"preambulo": True})
    modelo, tok, config, fonte = load_instruction_model("rapido", device="cpu")
    # o formato do prompt vem do checkpoint (com preâmbulo), não do modo rápido (sem)
    assert fonte == "checkpoint" and config == {**mini, "preambulo": True} and not modelo.training
    assert INSTRUCTION_SETTINGS["rapido"]["preambulo"] is False
    texto = "### Instrução: Qual é a capital da Bahia? Salvador, ação, 2024."
    assert tok.encode(texto) == tokenizer.encode(texto) and tok.eot_token == tokenizer.eot_token
    e = {"instrucao": "Some 2 e 3.", "entrada": "", "saida": "5"}
    assert generate_response(modelo, e, tok, preambulo=False, max_new_tokens=3) == \
        generate_response(original, e, tokenizer, preambulo=False, max_new_tokens=3)


def test_checkpoint_antigo_sem_tokenizador_e_recusado_e_refeito(monkeypatch, tmp_path, tokenizer, mini, capsys):
    monkeypatch.setenv("LLM_ARTEFATOS", str(tmp_path))
    torch.manual_seed(0)
    caminho = instruction_checkpoint_path("rapido")
    save_checkpoint(caminho, GPTModel(mini), None, mini)                 # como os da versão antiga: sem tokenizador
    base = GPTModel(mini)
    monkeypatch.setattr(instrucoes, "load_base_model", lambda *a, **k: (base, tokenizer, mini, "checkpoint"))
    monkeypatch.setattr(instrucoes, "finetune_instructions", lambda *a, **k: {"tempo_s": 0.0})
    modelo, tok, config, fonte = load_instruction_model("rapido", device="cpu")
    assert "não guarda o tokenizador" in capsys.readouterr().out
    assert fonte == "ajuste" and modelo is base and tok is tokenizer
    _, pacote = load_checkpoint(caminho)                                  # refeito, agora com o tokenizador
    assert pacote["tokenizer"]["nome"] == tokenizer.name and pacote["fonte_base"] == "checkpoint"
    assert pacote["formato_prompt"] == {"preambulo": INSTRUCTION_SETTINGS["rapido"]["preambulo"]}
    _, tok2, config2, fonte2 = load_instruction_model("rapido", device="cpu")
    assert fonte2 == "checkpoint" and tok2.encode("Capitu") == tokenizer.encode("Capitu")
    assert config2["preambulo"] == INSTRUCTION_SETTINGS["rapido"]["preambulo"]


def test_checkpoint_sem_formato_do_prompt_e_recusado(monkeypatch, tmp_path, tokenizer, mini, capsys):
    monkeypatch.setenv("LLM_ARTEFATOS", str(tmp_path))
    save_checkpoint(instruction_checkpoint_path("rapido"), GPTModel(mini), None, mini,
                    tokenizer=tokenizer_state(tokenizer))                 # tem o tokenizador, não o formato
    base = GPTModel(mini)
    monkeypatch.setattr(instrucoes, "load_base_model", lambda *a, **k: (base, tokenizer, mini, "checkpoint"))
    monkeypatch.setattr(instrucoes, "finetune_instructions", lambda *a, **k: {"tempo_s": 0.0})
    _, _, config, fonte = load_instruction_model("rapido", device="cpu")
    assert "formato do prompt" in capsys.readouterr().out and fonte == "ajuste" and "preambulo" in config


@pytest.mark.parametrize("instrucao", ["", "   ", None])
def test_format_input_recusa_instrucao_vazia(instrucao):
    with pytest.raises(ValueError, match="instrução está vazia"):
        format_input({"instrucao": instrucao, "entrada": "O trem atrasou."}, preambulo=False)


def test_dados_do_pacote_sao_a_copia_do_conjunto_do_capitulo():
    copia = Path(instrucoes.__file__).parent / "dados" / "instrucoes.json"
    assert copia.read_bytes() == (PASTA_DADOS / "instrucoes.json").read_bytes()


# ---------------------------------------------------------------- o texto do notebook confere com os dados

def _markdown_do_capitulo() -> list[str]:
    caderno = json.loads((PASTA_DADOS.parent / "notebook.ipynb").read_text(encoding="utf-8"))
    return ["".join(c["source"]) for c in caderno["cells"] if c["cell_type"] == "markdown"]


def test_numero_de_tarefas_citado_no_texto_e_o_do_conjunto(splits):
    verificaveis = {e["tarefa"] for parte in splits for e in parte if e["tarefa"] != OPEN_TASK}
    citados = [int(n) for texto in _markdown_do_capitulo()
               for n in re.findall(r"(\d+) tarefas\s+verificáveis", texto)]
    assert citados, "o resumo deveria dizer quantas tarefas verificáveis o conjunto tem"
    assert set(citados) == {len(verificaveis)}


def test_ids_citados_do_bpe_sao_os_do_tokenizador_do_curso(tokenizer):
    texto = next(t for t in _markdown_do_capitulo() if "Compare as linhas de `Ontem`" in t)
    citados = [[int(i) for i in lista.split(",")] for lista in re.findall(r"`\[([\d, ]+)\]`", texto)]
    assert citados == [tokenizer.encode(" Ontem"), tokenizer.encode("\nOntem")]
    for palavra in (" Ontem", "Ontem"):                 # o primeiro pedaço, com e sem espaço, citado com o id
        primeiro = tokenizer.encode(palavra)[0]
        assert f"`{tokenizer.decode([primeiro])!r}` ({primeiro})" in texto


# ---------------------------------------------------------------- agendador e escolha entre opções

def test_stable_then_cosine_lr():
    from llm_do_zero.pretreino import warmup_cosine_lr
    from llm_do_zero.instrucoes import stable_then_cosine_lr
    taxas = [stable_then_cosine_lr(p, 100, 3e-3, 3e-5, 5, 20) for p in range(101)]
    assert taxas[:5] == pytest.approx([3e-3 * (p + 1) / 5 for p in range(5)])          # aquecimento
    assert taxas[5:81] == pytest.approx([3e-3] * 76)                                     # platô
    assert all(a > b for a, b in zip(taxas[80:100], taxas[81:101]))                       # só desce no fim
    assert taxas[100] == pytest.approx(3e-5)
    # com o decaimento do tamanho do treino inteiro, é o agendador do capítulo 05
    for passo in range(0, 100, 7):
        assert stable_then_cosine_lr(passo, 100, 5e-5, 5e-6, 10, 100) == pytest.approx(
            warmup_cosine_lr(passo, 100, 5e-5, 5e-6, 10))


def _logprob_media(modelo, prompt, opcao):
    with torch.no_grad():
        logits = modelo(torch.tensor([prompt + opcao[:-1]]))[0]
    logp = torch.log_softmax(logits, dim=-1)
    return sum(logp[len(prompt) - 1 + j, t].item() for j, t in enumerate(opcao)) / len(opcao)


def test_option_logprobs_igual_a_conta_direta(mini):
    from llm_do_zero.instrucoes import option_logprobs
    torch.manual_seed(0)
    modelo = GPTModel(mini).eval()
    prompt, opcoes = [5, 9, 300, 42, 7], [[11], [12, 13, 14], [8000, 15]]
    obtido = option_logprobs(modelo, prompt, opcoes)
    assert obtido == pytest.approx([_logprob_media(modelo, prompt, o) for o in opcoes], abs=1e-5)
    # prompt maior que o contexto: o começo sai, como na geração
    longo = list(range(100, 100 + mini["context_length"] + 20))
    cortado = longo[-(mini["context_length"] - 3 + 1):]
    assert option_logprobs(modelo, longo, opcoes) == pytest.approx(option_logprobs(modelo, cortado, opcoes), abs=1e-5)


def test_choose_options_escolhe_a_mais_provavel(tokenizer, splits, mini):
    from llm_do_zero.instrucoes import choose_options, option_logprobs
    torch.manual_seed(1)
    modelo = GPTModel(mini).eval()
    treino, _, teste = splits
    itens = [e for e in teste if e["tarefa"] in ("sentimento", "maior_numero", "primeira_palavra")][::5]
    respostas = {t: {e["saida"] for e in treino if e["tarefa"] == t} for t in ("sentimento",)}
    for r in choose_options(modelo, itens, tokenizer, treino, preambulo=False):
        opcoes = answer_options(r, respostas)
        notas = option_logprobs(modelo, tokenizer.encode(build_prompt(r, False)),
                                [tokenizer.encode(" " + o) for o in opcoes])
        assert r["resposta"] == opcoes[notas.index(max(notas))]
