"""Testes do capítulo 07: conjunto de instruções, formato do prompt, collate e avaliação."""
import collections
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tiktoken
import torch

from llm_do_zero.gpt import GPTModel
from llm_do_zero.pretreino import calc_loss_batch, save_checkpoint
from llm_do_zero.instrucoes import (
    calc_loss_batch_masked, custom_collate_fn, exact_match, extract_response, format_input, generate_response,
    instruction_checkpoint_path, instruction_data_path, INSTRUCTION_SETTINGS, InstructionDataset,
    load_instruction_model, load_instruction_splits, normalize_answer, OPEN_TASK, score_by_task,
    tokenize_example,
)

MINI = {"vocab_size": 50257, "context_length": 64, "emb_dim": 16, "n_heads": 2, "n_layers": 1, "drop_rate": 0.0,
        "qkv_bias": False}

PASTA_DADOS = Path(__file__).resolve().parent.parent / "07-instrucoes" / "dados"


@pytest.fixture(scope="module")
def tokenizer():
    return tiktoken.get_encoding("gpt2")


@pytest.fixture(scope="module")
def splits():
    return load_instruction_splits(PASTA_DADOS / "instrucoes.json")


def test_gerador_reproduz_o_arquivo_byte_a_byte(tmp_path):
    destino = tmp_path / "instrucoes.json"
    subprocess.run([sys.executable, str(PASTA_DADOS / "gerar_instrucoes.py"), "--saida", str(destino)],
                   check=True, capture_output=True)
    assert destino.read_bytes() == (PASTA_DADOS / "instrucoes.json").read_bytes()


def test_o_caminho_padrao_e_o_arquivo_do_repositorio(monkeypatch):
    monkeypatch.chdir(PASTA_DADOS.parent)
    assert instruction_data_path().resolve() == (PASTA_DADOS / "instrucoes.json").resolve()


def test_tamanho_e_chaves_do_conjunto(splits):
    todos = [e for parte in splits for e in parte]
    assert len([e for e in todos if e["tarefa"] != OPEN_TASK]) >= 1100
    assert len([e for e in todos if e["tarefa"] == OPEN_TASK]) >= 100
    for e in todos:
        assert set(e) == {"instrucao", "entrada", "saida", "tarefa", "particao"}
        assert e["instrucao"].strip() and e["saida"].strip()


def test_nenhum_exemplo_repetido_entre_particoes(splits):
    chaves = [{(e["instrucao"], e["entrada"]) for e in parte} for parte in splits]
    treino, validacao, teste = chaves
    assert not treino & teste
    assert not treino & validacao
    assert not validacao & teste
    assert sum(len(c) for c in chaves) == sum(len(p) for p in splits)   # nem dentro de uma partição


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


def test_collate_sem_mascara_exato():
    entradas, alvos = custom_collate_fn([([11, 12, 13, 14, 15], 3), ([21, 22], 1)])
    assert entradas.tolist() == [[11, 12, 13, 14, 15], [21, 22, 50256, 50256, 50256]]
    assert alvos.tolist() == [[12, 13, 14, 15, 50256], [22, 50256, -100, -100, -100]]
    assert entradas.dtype == alvos.dtype == torch.int64


def test_collate_com_mascara_e_corte_exato():
    lote = [([11, 12, 13, 14, 15], 3), ([21, 22], 1)]
    _, alvos = custom_collate_fn(lote, mask_prompt=True)
    assert alvos.tolist() == [[-100, -100, 14, 15, 50256], [22, 50256, -100, -100, -100]]
    entradas, alvos = custom_collate_fn(lote, allowed_max_length=3, mask_prompt=True, ignore_index=-1,
                                        pad_token_id=0)
    assert entradas.tolist() == [[11, 12, 13], [21, 22, 0]]
    assert alvos.tolist() == [[-1, -1, 14], [22, 0, -1]]


def test_collate_aceita_so_ids_mas_mascara_exige_tamanho_do_prompt():
    entradas, alvos = custom_collate_fn([[1, 2, 3], [4]])
    assert alvos.tolist() == [[2, 3, 50256], [50256, -100, -100]]
    with pytest.raises(ValueError, match="mask_prompt"):
        custom_collate_fn([[1, 2, 3]], mask_prompt=True)


def test_dataset_prompt_e_prefixo_e_mascara_deixa_so_a_resposta(tokenizer):
    e = {"instrucao": "Qual é a capital da Bahia?", "entrada": "", "saida": "Salvador"}
    ids, n_prompt = tokenize_example(e, tokenizer, preambulo=False)
    assert tokenizer.decode(ids) == "### Instrução: Qual é a capital da Bahia?\n\n### Resposta: Salvador"
    assert tokenizer.decode(ids[:n_prompt]).endswith("### Resposta:")
    _, alvos = custom_collate_fn([InstructionDataset([e], tokenizer, preambulo=False)[0]], mask_prompt=True)
    contam = alvos[0][alvos[0] != -100].tolist()
    assert tokenizer.decode(contam[:-1]) == " Salvador" and contam[-1] == 50256


def test_perda_ignora_menos_cem():
    torch.manual_seed(0)
    logits = torch.randn(6, 10)
    alvos = torch.tensor([1, 2, -100, 3, -100, 4])
    validos = alvos != -100
    assert torch.allclose(torch.nn.functional.cross_entropy(logits, alvos),
                          torch.nn.functional.cross_entropy(logits[validos], alvos[validos]))


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


def test_extract_response():
    texto = "### Instrução: Some 2 e 3.\n\n### Resposta: 5<|endoftext|>lixo"
    assert extract_response(texto) == "5"
    assert extract_response("### Instrução: x\n\n### Resposta:  Belo Horizonte\n\n### Instrução: y") == "Belo Horizonte"


def test_score_by_task_ignora_abertas():
    resultados = [{"tarefa": "soma", "saida": "7", "resposta": "7"},
                  {"tarefa": "soma", "saida": "8", "resposta": "9"},
                  {"tarefa": "capital", "saida": "Maceió", "resposta": "Maceio"},
                  {"tarefa": OPEN_TASK, "saida": "qualquer", "resposta": "outra"}]
    nota = score_by_task(resultados)
    assert nota["por_tarefa"] == {"soma": 0.5, "capital": 0.0} and nota["geral"] == pytest.approx(1 / 3)
    assert score_by_task(resultados, ignore_accents=True)["geral"] == pytest.approx(2 / 3)


def test_caminho_do_checkpoint(monkeypatch, tmp_path):
    monkeypatch.setenv("LLM_ARTEFATOS", str(tmp_path))
    assert instruction_checkpoint_path("rapido") == tmp_path / "checkpoints" / "07-instrucoes-rapido.pt"


def test_exemplos_cabem_no_contexto_do_modo_rapido(splits, tokenizer):
    limite = INSTRUCTION_SETTINGS["rapido"]["allowed_max_length"]
    maior = max(len(tokenize_example(e, tokenizer, preambulo=False)[0]) for parte in splits for e in parte)
    assert maior + 1 <= limite


def test_perda_mascarada_igual_a_do_capitulo_05(tokenizer, splits):
    torch.manual_seed(0)
    modelo = GPTModel(MINI)
    lote = [InstructionDataset(splits[0][:4], tokenizer, preambulo=False)[i] for i in range(4)]
    for mascara in (True, False):
        entradas, alvos = custom_collate_fn(lote, mask_prompt=mascara, allowed_max_length=64)
        esperado = calc_loss_batch(entradas, alvos, modelo, "cpu")
        assert torch.allclose(calc_loss_batch_masked(entradas, alvos, modelo, "cpu"), esperado, atol=1e-6)


def test_load_instruction_model_usa_o_checkpoint(monkeypatch, tmp_path, tokenizer):
    monkeypatch.setenv("LLM_ARTEFATOS", str(tmp_path))
    torch.manual_seed(0)
    original = GPTModel(MINI).eval()
    save_checkpoint(instruction_checkpoint_path("rapido"), original, None, MINI)
    modelo, config, fonte = load_instruction_model("rapido", device="cpu")
    assert fonte == "checkpoint" and config == MINI and not modelo.training
    e = {"instrucao": "Some 2 e 3.", "entrada": "", "saida": "5"}
    assert generate_response(modelo, e, tokenizer, preambulo=False, max_new_tokens=3) == \
        generate_response(original, e, tokenizer, preambulo=False, max_new_tokens=3)


# ---------------------------------------------------------------- o texto do notebook confere com os dados

def _markdown_do_capitulo() -> list[str]:
    import json
    caderno = json.loads((PASTA_DADOS.parent / "notebook.ipynb").read_text(encoding="utf-8"))
    return ["".join(c["source"]) for c in caderno["cells"] if c["cell_type"] == "markdown"]


def test_numero_de_tarefas_citado_no_texto_e_o_do_conjunto(splits):
    verificaveis = {e["tarefa"] for parte in splits for e in parte if e["tarefa"] != OPEN_TASK}
    citados = [int(n) for texto in _markdown_do_capitulo()
               for n in re.findall(r"(\d+) tarefas\s+verificáveis", texto)]
    assert citados, "o resumo deveria dizer quantas tarefas verificáveis o conjunto tem"
    assert set(citados) == {len(verificaveis)}


def test_ids_citados_do_bpe_sao_os_do_tiktoken(tokenizer):
    texto = next(t for t in _markdown_do_capitulo() if "Compare as linhas de `Ontem`" in t)
    citados = [[int(i) for i in lista.split(",")] for lista in re.findall(r"`\[([\d, ]+)\]`", texto)]
    assert citados == [tokenizer.encode(" Ontem"), tokenizer.encode("\nOntem")]
    for palavra in (" Ontem", "Ontem"):                 # o primeiro pedaço, com e sem espaço, citado com o id
        primeiro = tokenizer.encode(palavra)[0]
        assert f"`{tokenizer.decode([primeiro])!r}` ({primeiro})" in texto
