"""Capítulo 07-instrucoes: o código que o capítulo ensina e os seguintes reutilizam.

ARQUIVO GERADO por `python ferramentas/exportar.py` a partir das células `# exportar` de
`07-instrucoes/notebook.ipynb`. Não edite à mão: mude o notebook e gere de novo.
"""
from collections import Counter
from functools import partial
from importlib import resources
import json
import math
from pathlib import Path
import random
import re
import string
import time
import unicodedata

import torch
from torch.utils.data import DataLoader, Dataset

from llm_do_zero.oficina import (
    amp_settings, artifacts_dir, DownloadError, get_device, get_mode, mode_settings, progress_bar,
    project_root, set_seed,
)
from llm_do_zero.estatistica import wilson_interval
from llm_do_zero.gpt import text_to_token_ids, token_ids_to_text
from llm_do_zero.pretreino import (
    autocast_context, evaluate_model, generate, load_base_model, load_checkpoint, save_checkpoint,
    tokenizer_from_state, tokenizer_state, train_loop, warmup_cosine_lr,
)


# %% 07-instrucoes/notebook.ipynb · célula 6
INSTRUCTION_SETTINGS = {
    "rapido": {"base_source": "auto", "preambulo": False, "train_open": False, "mask_prompt": True,
               "batch_size": 8, "num_epochs": 20, "lr": 3e-3, "min_lr": 3e-5, "warmup_steps": 0,
               "decay_fraction": 0.2, "grad_clip": None, "weight_decay": 0.3, "max_seconds": 600,
               "eval_freq": 100, "eval_iter": 3, "allowed_max_length": 128, "max_new_tokens": 10, "n_shots": 2,
               "train_examples": None, "eval_texts": None,      # quantos exemplos treinar e avaliar (None: todos)
               "samples": 5},                                   # quantas perguntas abertas mostrar
    "completo": {"base_source": "gpt2", "preambulo": True, "train_open": True, "mask_prompt": True,
                 "batch_size": 8, "num_epochs": 3, "lr": 5e-5, "min_lr": 5e-6, "warmup_steps": 50,
                 "decay_fraction": 1.0, "grad_clip": 1.0, "weight_decay": 0.1, "max_seconds": 1800,
                 "eval_freq": 50, "eval_iter": 5, "allowed_max_length": 1024, "max_new_tokens": 10, "n_shots": 3,
                 "train_examples": None, "eval_texts": None, "samples": 5},
}

# O que a execução do capítulo tem de reproduzir (capítulo 00, seção 8): o ajuste fino move o acerto em alguns
# pontos de uma máquina para outra; contagens de exemplos são exatas e o tempo não se compara.
INSTRUCTION_CHECKS = {
    "capitulo": "07-instrucoes",
    "padrao": 0.05,
    "tolerancias": {"exemplos_teste": 0, "exemplos_redacoes_novas": 0, "n_shots": 0, "epocas": 0,
                    "fonte_base": 0, "tokenizador": 0, "tempo_treino_s": None, "redacoes_so_mesma": 8,
                    "redacoes_so_nova": 8, "mcnemar_redacoes_p": None, "por_tarefa": 0.15,
                    "busca_exact_match": 0, "busca_exact_match_redacoes_novas": 0,
                    "parametros": 0, "contexto": 0, "mcnemar_busca_p": None, "busca_grupos": 8,
                    "busca_grupos.tudo.busca": 0, "busca_grupos.regras.busca": 0, "busca_grupos.fatos.busca": 0,
                    "busca_grupos.tudo.ajustado": 0.05, "busca_grupos.regras.ajustado": 0.05,
                    "busca_grupos.fatos.ajustado": 0.05, "busca_grupos.tudo.p": None,
                    "busca_grupos.regras.p": None, "busca_grupos.fatos.p": None},
    "conclusoes": {"o modelo ajustado acerta bem mais que o acaso": "exact_match > acaso_exact_match + 0.15",
                   "escolhendo entre opções, o ajustado vence o modelo base":
                       "escolha_ajustado > escolha_base_few_shot",
                   "nas regras (itens novos), o ajustado vence a busca no treino por mais de 15 pontos":
                       "m('busca_grupos.regras.ajustado') > m('busca_grupos.regras.busca') + 0.15",
                   "nos fatos, a busca no treino acerta tanto quanto o ajustado":
                       "m('busca_grupos.fatos.busca') >= m('busca_grupos.fatos.ajustado') - 0.05",
                   "com redações novas, o ajustado não passa da busca":
                       "exact_match_redacoes_novas < busca_exact_match_redacoes_novas + 0.05"},
}


# %% 07-instrucoes/notebook.ipynb · célula 9
def load_instruction_base(mode: str | None = None, device=None):
    """O modelo base do ajuste fino, com o tokenizador dele: (model, tokenizer, config, fonte).

    Com `base_source='auto'` (modo rápido), é a regra de `load_base_model`: o modelo base do curso → o checkpoint
    rápido do capítulo 05 → um pré-treino curto do tamanho rápido. Com uma fonte fixa (o modo
    completo pede 'gpt2'), tenta essa fonte primeiro e, se ela falhar (sem rede, sem safetensors), volta à regra.
    """
    mode = mode or get_mode()
    fonte = INSTRUCTION_SETTINGS[mode]["base_source"]
    if fonte != "auto":
        try:
            return load_base_model(mode, device, source=fonte)
        except (DownloadError, ImportError, ValueError) as erro:
            print(f"Modelo base: a fonte {fonte!r} falhou ({erro}); sigo a regra do capítulo 05.")
    return load_base_model(mode, device)


# %% 07-instrucoes/notebook.ipynb · célula 13
OPEN_TASK = "aberta"   # tarefa das perguntas abertas: mostradas, mas sem nota automática
NEW_TEMPLATES_SPLIT = "teste_redacoes_novas"   # partição com os itens do teste pedidos com redações novas
FACT_TASKS = ("capital", "antonimo", "categoria")   # tarefas de fatos: o teste pede fatos que o treino mostrou


def instruction_data_path() -> Path:
    """Caminho do conjunto de instruções do curso: o do repositório (`07-instrucoes/dados/instrucoes.json`) ou,
    com o pacote instalado pelo pip e usado fora do repositório, a cópia que vem dentro dele."""
    no_repositorio = project_root() / "07-instrucoes" / "dados" / "instrucoes.json"
    if no_repositorio.is_file():
        return no_repositorio
    return Path(str(resources.files("llm_do_zero").joinpath("dados", "instrucoes.json")))


def load_instruction_data(path: str | Path | None = None) -> list[dict]:
    """Todos os exemplos do conjunto de instruções (dicionários com instrucao, entrada, saida, tarefa, particao)."""
    path = Path(path) if path is not None else instruction_data_path()
    if not path.is_file():
        raise FileNotFoundError(f"Não encontrei o conjunto de instruções em {path}. Ele vem com o repositório "
                                f"(07-instrucoes/dados/); para recriá-lo, rode `python gerar_instrucoes.py` "
                                f"nessa pasta.")
    return json.loads(path.read_text(encoding="utf-8"))


def load_instruction_splits(path: str | Path | None = None) -> tuple[list[dict], list[dict], list[dict]]:
    """As partições (treino, validação, teste) do conjunto de instruções, na ordem do arquivo."""
    dados = load_instruction_data(path)
    return tuple([e for e in dados if e["particao"] == p] for p in ("treino", "validacao", "teste"))


def load_new_template_test(path: str | Path | None = None) -> list[dict]:
    """O teste de redações novas: os itens verificáveis do teste, cada um pedido com uma redação que o treino
    nunca usa (o gerador as escreve à parte, em REDACOES_NOVAS)."""
    return [e for e in load_instruction_data(path) if e["particao"] == NEW_TEMPLATES_SPLIT]


# %% 07-instrucoes/notebook.ipynb · célula 22
PREAMBULO = ("Abaixo está uma instrução que descreve uma tarefa. "
             "Escreva uma resposta que complete o pedido de forma adequada.")
RESPONSE_HEADER = "\n\n### Resposta:"


def format_input(entry: dict, preambulo: bool | None = None) -> str:
    """Prompt no formato Alpaca em português, SEM a resposta: (preâmbulo +) instrução (+ entrada, se houver).

    `preambulo=None` usa o padrão do modo (INSTRUCTION_SETTINGS); True/False força — quem usa um modelo já
    ajustado passa o formato com que ele foi treinado (`load_instruction_model` o lê do checkpoint). O texto
    completo de um exemplo é `format_input(entry) + RESPONSE_HEADER + " " + entry["saida"]`. Uma instrução vazia
    é recusada: sem ela, o modelo geraria a partir de nada.
    """
    if not str(entry.get("instrucao") or "").strip():
        raise ValueError("A instrução está vazia: escreva o que o modelo deve fazer (a chave 'instrucao' do "
                         "exemplo); a entrada, se houver, vai na chave 'entrada'.")
    if preambulo is None:
        preambulo = INSTRUCTION_SETTINGS[get_mode()]["preambulo"]
    texto = f"### Instrução: {entry['instrucao']}"
    if entry.get("entrada"):
        texto += f"\n\n### Entrada: {entry['entrada']}"
    return f"{PREAMBULO}\n\n{texto}" if preambulo else texto


# %% 07-instrucoes/notebook.ipynb · célula 28
def tokenize_example(entry: dict, tokenizer, preambulo: bool | None = None) -> tuple[list[int], int]:
    """Ids do exemplo completo (prompt + " " + resposta) e quantos deles são do prompt.

    Prompt e resposta são tokenizados separadamente e concatenados: é exatamente o que o modelo vê na
    geração, quando recebe o prompt e produz a resposta token a token.
    """
    prompt_ids = tokenizer.encode(format_input(entry, preambulo) + RESPONSE_HEADER)
    resposta_ids = tokenizer.encode(" " + entry["saida"])
    return prompt_ids + resposta_ids, len(prompt_ids)


class InstructionDataset(Dataset):
    """Exemplos de instrução tokenizados. Cada item é (ids do texto completo, nº de tokens do prompt)."""

    def __init__(self, data: list[dict], tokenizer, preambulo: bool | None = None):
        self.data = data
        self.encoded = [tokenize_example(e, tokenizer, preambulo) for e in data]

    def __len__(self) -> int:
        return len(self.encoded)

    def __getitem__(self, i: int) -> tuple[list[int], int]:
        return self.encoded[i]


def custom_collate_fn(batch, pad_token_id: int, ignore_index: int = -100, allowed_max_length: int | None = None,
                      mask_prompt: bool = False, device="cpu"):
    """Monta (entradas, alvos) de formato (lote, n) a partir de itens (ids, tamanho_do_prompt) ou só ids.

    `pad_token_id` é o fim de texto do tokenizador do modelo (`tokenizer.eot_token`): ele fecha cada sequência
    e completa as mais curtas. Desloca os alvos de uma posição, troca o padding dos alvos por `ignore_index`
    (menos o primeiro, que marca o fim da resposta) e, com `mask_prompt=True`, ignora também os alvos do prompt.
    """
    itens = [item if isinstance(item, tuple) else (item, None) for item in batch]
    if mask_prompt and any(n is None for _, n in itens):
        raise ValueError("mask_prompt=True precisa saber o tamanho do prompt: passe itens (ids, tamanho_do_prompt), "
                         "como os do InstructionDataset.")
    maior = max(len(ids) for ids, _ in itens) + 1          # +1: o <|endoftext|> de cada sequência
    entradas, alvos = [], []
    for ids, n_prompt in itens:
        sequencia = list(ids) + [pad_token_id] * (maior - len(ids))
        entrada = torch.tensor(sequencia[:-1])
        alvo = torch.tensor(sequencia[1:])
        alvo[len(ids):] = ignore_index                     # alvo[len(ids) - 1] é o fim de texto: fica
        if mask_prompt:
            alvo[:n_prompt - 1] = ignore_index             # alvos que ainda são tokens do prompt
        if allowed_max_length is not None:
            entrada, alvo = entrada[:allowed_max_length], alvo[:allowed_max_length]
        entradas.append(entrada)
        alvos.append(alvo)
    return torch.stack(entradas).to(device), torch.stack(alvos).to(device)


def create_instruction_dataloader(data: list[dict], batch_size: int = 8, shuffle: bool = True,
                                  drop_last: bool = True, preambulo: bool | None = None, mask_prompt: bool = False,
                                  allowed_max_length: int | None = None, *, tokenizer) -> DataLoader:
    """DataLoader de lotes de instrução prontos para o `train_model_simple` do capítulo 05.

    `tokenizer` é o do modelo que vai treinar: ele tokeniza os exemplos e dá o fim de texto do preenchimento.
    """
    collate = partial(custom_collate_fn, pad_token_id=tokenizer.eot_token, mask_prompt=mask_prompt,
                      allowed_max_length=allowed_max_length)
    return DataLoader(InstructionDataset(data, tokenizer, preambulo), batch_size=batch_size, shuffle=shuffle,
                      drop_last=drop_last, collate_fn=collate)


# %% 07-instrucoes/notebook.ipynb · célula 36
def normalize_answer(texto: str, ignore_accents: bool = False) -> str:
    """Normaliza uma resposta para comparação: minúsculas, espaços colapsados, sem pontuação nas bordas
    e, com `ignore_accents=True`, sem acentos."""
    texto = unicodedata.normalize("NFC", texto).lower()
    texto = re.sub(r"\s+", " ", texto).strip(string.punctuation + " …«»“”‘’")
    if ignore_accents:
        texto = "".join(c for c in unicodedata.normalize("NFD", texto) if not unicodedata.combining(c))
    return texto


def exact_match(prediction: str, reference: str, ignore_accents: bool = False) -> bool:
    """True se as duas respostas ficam iguais depois de `normalize_answer`."""
    return normalize_answer(prediction, ignore_accents) == normalize_answer(reference, ignore_accents)


def extract_response(texto_gerado: str) -> str:
    """A resposta dentro de um texto gerado: o que vem depois do PRIMEIRO '### Resposta:' (o texto inteiro, se
    não houver cabeçalho), até o fim de texto ou a primeira quebra de linha.

    O primeiro: um modelo que não aprendeu a parar emenda outra instrução e outra resposta, e a resposta ao
    nosso pedido é a que vem logo depois do prompt.
    """
    resposta = texto_gerado.split(RESPONSE_HEADER.strip(), 1)[-1]
    resposta = resposta.split("<|endoftext|>")[0].strip()
    return resposta.split("\n")[0].strip()


def build_prompt(entry: dict, preambulo: bool | None = None, shots: list[dict] | tuple = ()) -> str:
    """O texto que o modelo completa: (preâmbulo +) exemplos resolvidos, se houver (few-shot), + o pedido,
    terminado em '### Resposta:'. Sem `shots`, é `format_input(entry, preambulo) + RESPONSE_HEADER`."""
    if preambulo is None:
        preambulo = INSTRUCTION_SETTINGS[get_mode()]["preambulo"]
    blocos = [format_input(s, preambulo=False) + RESPONSE_HEADER + " " + s["saida"] for s in shots]
    blocos.append(format_input(entry, preambulo=False) + RESPONSE_HEADER)
    texto = "\n\n".join(blocos)
    return f"{PREAMBULO}\n\n{texto}" if preambulo else texto


def generate_response(model, entry: dict, tokenizer, preambulo: bool | None = None, max_new_tokens: int = 40,
                      device=None, shots: list[dict] | tuple = ()) -> str:
    """Gera (de forma gulosa, até o fim de texto do tokenizador) a resposta do modelo a um exemplo e a devolve
    já extraída. `tokenizer` é o do modelo; `shots`, exemplos resolvidos postos antes do pedido (few-shot)."""
    device = device or next(model.parameters()).device
    ids = text_to_token_ids(build_prompt(entry, preambulo, shots), tokenizer).to(device)
    with autocast_context(device, amp_settings(device)[0]):      # na GPU, a mesma precisão mista do treino
        saida = generate(model, ids, max_new_tokens, context_size=model.pos_emb.weight.shape[0],
                         eos_id=tokenizer.eot_token)
    continuacao = token_ids_to_text(saida[:, ids.shape[1]:], tokenizer)   # só o que o modelo escreveu
    return extract_response(RESPONSE_HEADER + continuacao)


def evaluate_instructions(model, entries: list[dict], tokenizer, preambulo: bool | None = None,
                          max_new_tokens: int = 10, device=None, desc: str = "avaliando",
                          shots: dict[str, list[dict]] | None = None) -> list[dict]:
    """Gera a resposta de cada exemplo. Devolve cópias dos exemplos com a chave 'resposta' acrescentada.

    `shots` (opcional) leva, para cada tarefa, os exemplos resolvidos do prompt few-shot.
    """
    shots = shots or {}
    return [{**e, "resposta": generate_response(model, e, tokenizer, preambulo, max_new_tokens, device,
                                                shots.get(e["tarefa"], ()))}
            for e in progress_bar(entries, desc=desc)]


def score_by_task(results: list[dict], ignore_accents: bool = False) -> dict:
    """Acerto exato por tarefa e geral, só nos exemplos verificáveis (tarefa diferente de 'aberta').

    Devolve 'geral' e 'por_tarefa' (proporções), 'acertos' e 'exemplos' (contagens por tarefa) e os intervalos
    de Wilson de 95%: 'intervalos' (por tarefa) e 'intervalo_geral'.
    """
    acertos: dict[str, list[bool]] = {}
    for r in results:
        if r["tarefa"] != OPEN_TASK:
            acertos.setdefault(r["tarefa"], []).append(exact_match(r["resposta"], r["saida"], ignore_accents))
    todos = [a for lista in acertos.values() for a in lista]
    return {"geral": sum(todos) / max(len(todos), 1),
            "por_tarefa": {t: sum(lista) / len(lista) for t, lista in acertos.items()},
            "acertos": {t: sum(lista) for t, lista in acertos.items()},
            "exemplos": {t: len(lista) for t, lista in acertos.items()},
            "intervalos": {t: wilson_interval(sum(lista), len(lista)) for t, lista in acertos.items()},
            "intervalo_geral": wilson_interval(sum(todos), len(todos)) if todos else (0.0, 1.0)}


def option_logprobs(model, prompt_ids: list[int], options_ids: list[list[int]]) -> list[float]:
    """Log-probabilidade média por token de cada opção (lista de ids) como continuação do prompt.

    Todas as opções passam juntas, num lote só; a média por token põe na mesma régua opções de 1 e de 4 tokens.
    Se faltar contexto, o começo do prompt sai, como na geração. A cabeça de saída só vê as posições das opções.
    """
    device = next(model.parameters()).device
    contexto = model.pos_emb.weight.shape[0]
    maior = max(len(o) for o in options_ids)
    prompt_ids = list(prompt_ids)[-(contexto - maior + 1):]
    n = len(prompt_ids)
    entradas = torch.full((len(options_ids), n + maior - 1), prompt_ids[-1], dtype=torch.long)
    alvos = torch.full_like(entradas, -100)
    for i, opcao in enumerate(options_ids):
        linha = prompt_ids + list(opcao[:-1])
        entradas[i, :len(linha)] = torch.tensor(linha)
        alvos[i, n - 1:n - 1 + len(opcao)] = torch.tensor(opcao)
    entradas, alvos = entradas.to(device), alvos.to(device)
    model.eval()
    with torch.no_grad(), autocast_context(device, amp_settings(device)[0]):
        posicoes = torch.arange(entradas.shape[1], device=device)
        x = model.final_norm(model.trf_blocks(model.tok_emb(entradas) + model.pos_emb(posicoes)))
        contam = alvos != -100
        logp = torch.log_softmax(model.out_head(x[contam]).float(), dim=-1)
        logp = logp.gather(1, alvos[contam].unsqueeze(1)).squeeze(1)       # (tokens de todas as opções,)
        soma = torch.zeros(len(options_ids), device=device).index_add_(0, contam.nonzero()[:, 0], logp)
    return (soma / contam.sum(dim=1)).tolist()


def choose_options(model, entries: list[dict], tokenizer, train_data: list[dict], preambulo: bool | None = None,
                   shots: dict[str, list[dict]] | None = None, desc: str = "escolhendo") -> list[dict]:
    """Em vez de gerar, o modelo ESCOLHE: para cada exemplo, a resposta é a das `answer_options` com maior
    log-probabilidade média depois do prompt (com exemplos few-shot, se houver). Pontue com `score_by_task`.

    É como se avaliam modelos base em testes de múltipla escolha: eles não precisam saber o formato da resposta
    nem quando parar, só preferir a opção certa.
    """
    respostas: dict[str, set[str]] = {}
    for e in train_data:
        respostas.setdefault(e["tarefa"], set()).add(e["saida"])
    shots = shots or {}
    resultados = []
    for e in progress_bar([e for e in entries if e["tarefa"] != OPEN_TASK], desc=desc):
        opcoes = answer_options(e, respostas)
        prompt = tokenizer.encode(build_prompt(e, preambulo, shots.get(e["tarefa"], ())))
        notas = option_logprobs(model, prompt, [tokenizer.encode(" " + o) for o in opcoes])
        resultados.append({**e, "resposta": opcoes[max(range(len(opcoes)), key=notas.__getitem__)]})
    return resultados


def answer_options(entry: dict, train_answers: dict[str, set[str]]) -> list[str]:
    """As respostas entre as quais um palpite às cegas escolheria: os dois números do pedido (maior e menor
    número), as palavras da lista (primeira palavra) ou, nas outras tarefas, as respostas distintas que o treino
    dá àquela tarefa (`train_answers[tarefa]`)."""
    if entry["tarefa"] in ("maior_numero", "menor_numero"):
        return re.findall(r"\d+", entry["instrucao"] + " " + entry["entrada"])
    if entry["tarefa"] == "primeira_palavra":
        return [p.strip() for p in entry["entrada"].split(",")]
    return sorted(train_answers[entry["tarefa"]])


def chance_score(entries: list[dict], train_data: list[dict]) -> dict:
    """Linha de base do acaso: o acerto ESPERADO de quem sorteia uma das `answer_options` de cada exemplo
    (1/n_opções quando a certa está entre elas, 0 quando não está), geral e por tarefa."""
    respostas: dict[str, set[str]] = {}
    for e in train_data:
        respostas.setdefault(e["tarefa"], set()).add(e["saida"])
    esperado: dict[str, list[float]] = {}
    for e in entries:
        if e["tarefa"] != OPEN_TASK:
            opcoes = answer_options(e, respostas)
            acerta = any(exact_match(o, e["saida"]) for o in opcoes)
            esperado.setdefault(e["tarefa"], []).append(acerta / len(opcoes))
    todos = [p for lista in esperado.values() for p in lista]
    return {"geral": sum(todos) / max(len(todos), 1),
            "por_tarefa": {t: sum(lista) / len(lista) for t, lista in esperado.items()}}


def majority_results(entries: list[dict], train_data: list[dict]) -> list[dict]:
    """Linha de base da maioria: cada exemplo recebe como 'resposta' a resposta mais comum do treino na mesma
    tarefa (pontue com `score_by_task`)."""
    contagens: dict[str, Counter] = {}
    for e in train_data:
        contagens.setdefault(e["tarefa"], Counter())[e["saida"]] += 1
    return [{**e, "resposta": contagens[e["tarefa"]].most_common(1)[0][0]} for e in entries
            if e["tarefa"] != OPEN_TASK]


def pick_shots(train_data: list[dict], n_shots: int, seed: int = 0) -> dict[str, list[dict]]:
    """Os exemplos do prompt few-shot: `n_shots` exemplos de treino de cada tarefa verificável, sorteados com
    semente (os mesmos para todos os pedidos da tarefa)."""
    rng = random.Random(seed)
    tarefas = dict.fromkeys(e["tarefa"] for e in train_data if e["tarefa"] != OPEN_TASK)
    return {t: rng.sample([e for e in train_data if e["tarefa"] == t], n_shots) for t in tarefas}


# %% 07-instrucoes/notebook.ipynb · célula 43
def prompt_words(entry: dict) -> list[str]:
    """As palavras (e números) do pedido — instrução e entrada —, normalizadas como as respostas."""
    return re.findall(r"\w+", normalize_answer(f"{entry['instrucao']} {entry.get('entrada', '')}"))


def lookup_results(entries: list[dict], train_data: list[dict]) -> list[dict]:
    """Linha de base da busca: cada exemplo recebe a resposta do pedido de TREINO mais parecido com o dele.

    "Parecido" é o cosseno entre vetores TF-IDF das palavras do pedido (`prompt_words`): cada palavra pesa
    log(N / nº de pedidos de treino que a têm), então as que aparecem em todo pedido quase não contam e as raras
    (um estado, um número, uma palavra da lista) decidem. Nenhum modelo: só memória do treino e comparação de
    palavras. Um modelo que não passa desta régua pode estar só reconhecendo pedidos. Pontue com `score_by_task`.
    """
    treino = [e for e in train_data if e["tarefa"] != OPEN_TASK]
    contagens = [Counter(prompt_words(e)) for e in treino]
    frequencia = Counter(p for c in contagens for p in c)
    idf = {p: math.log(len(treino) / n) for p, n in frequencia.items()}

    def vetor(contagem: Counter) -> dict[str, float]:
        pesos = {p: n * idf.get(p, 0.0) for p, n in contagem.items()}
        norma = math.sqrt(sum(v * v for v in pesos.values())) or 1.0
        return {p: v / norma for p, v in pesos.items()}

    vetores = [vetor(c) for c in contagens]
    resultados = []
    for e in entries:
        if e["tarefa"] == OPEN_TASK:
            continue
        v = vetor(Counter(prompt_words(e)))
        similaridades = [sum(peso * w.get(p, 0.0) for p, peso in v.items()) for w in vetores]
        melhor = max(range(len(treino)), key=similaridades.__getitem__)
        resultados.append({**e, "resposta": treino[melhor]["saida"], "vizinho": treino[melhor]})
    return resultados


# %% 07-instrucoes/notebook.ipynb · célula 51
def calc_loss_batch_masked(input_batch: torch.Tensor, target_batch: torch.Tensor, model, device,
                           ignore_index: int = -100) -> torch.Tensor:
    """A mesma perda de `calc_loss_batch`, calculando a cabeça de saída só onde o alvo não é `ignore_index`.

    Percorre as camadas do GPTModel como o `forward` dele, mas entrega à cabeça (a parte mais cara) só as
    posições que entram na perda — com o prompt mascarado, poucas por exemplo.
    """
    input_batch, target_batch = input_batch.to(device), target_batch.to(device)
    posicoes = torch.arange(input_batch.shape[1], device=device)
    x = model.drop_emb(model.tok_emb(input_batch) + model.pos_emb(posicoes))
    x = model.final_norm(model.trf_blocks(x))               # (lote, posições, emb_dim)
    contam = target_batch != ignore_index                     # (lote, posições)
    logits = model.out_head(x[contam])                        # (posições que contam, vocab_size)
    return torch.nn.functional.cross_entropy(logits, target_batch[contam])


# %% 07-instrucoes/notebook.ipynb · célula 55
def train_instruction_model(model, train_loader, val_loader, optimizer, device, num_epochs: int, eval_freq: int,
                            eval_iter: int, sample_entries: list[dict], tokenizer,
                            max_seconds: float | None = None, preambulo: bool | None = None, lr_schedule=None,
                            grad_clip: float | None = None):
    """Ajuste fino por instruções com o `train_loop` do capítulo 05: muda só a perda, que é a mascarada.

    Avalia (perda mascarada em `eval_iter` lotes de treino e de validação) depois do passo 1, a cada `eval_freq`
    passos e no último; ao fim de cada época, imprime as respostas do modelo a `sample_entries`. `lr_schedule`,
    `grad_clip` e `max_seconds` vão direto para o `train_loop` (que cuida também da precisão mista na GPU).
    Devolve (train_losses, val_losses, track_tokens_seen).
    """
    def perda(lote):
        return calc_loss_batch_masked(*lote, model, device)

    def avaliar(passo):
        treino, val = evaluate_model(model, train_loader, val_loader, device, eval_iter)
        return {"treino": treino, "val": val}

    def fim_da_epoca(epoca, barra, historico):
        respostas = [generate_response(model, e, tokenizer, preambulo, max_new_tokens=10, device=device)
                     for e in sample_entries]
        barra.write(f"época {epoca:2d}, passo {historico['passos']:4d}: " + " | ".join(map(repr, respostas)))

    historico = train_loop(model, optimizer, train_loader, device, perda, num_epochs=num_epochs,
                           lr_schedule=lr_schedule, grad_clip=grad_clip, eval_freq=eval_freq, evaluate=avaliar,
                           on_epoch_end=fim_da_epoca, max_seconds=max_seconds, desc="ajuste fino")
    avaliacoes = historico["avaliacoes"]
    return [a["treino"] for a in avaliacoes], [a["val"] for a in avaliacoes], [a["tokens"] for a in avaliacoes]


def stable_then_cosine_lr(step: int, total_steps: int, peak_lr: float, min_lr: float, warmup_steps: int,
                          decay_steps: int) -> float:
    """Taxa de aprendizado do passo `step` (0, 1, …): sobe em linha reta até `peak_lr` em `warmup_steps` passos,
    fica em `peak_lr` e, nos últimos `decay_steps` passos, desce em meia onda de cosseno até `min_lr` (o
    `warmup_cosine_lr` do capítulo 05 aplicado só ao fim). Com `decay_steps = total_steps`, é o cosseno inteiro."""
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    inicio = max(total_steps - decay_steps, warmup_steps)
    if step < inicio:
        return peak_lr
    return warmup_cosine_lr(step - inicio, total_steps - inicio, peak_lr, min_lr, 0)


def instruction_checkpoint_path(mode: str | None = None) -> Path:
    """Onde o capítulo 07 guarda o modelo ajustado para instruções de cada modo."""
    return artifacts_dir() / "checkpoints" / f"07-instrucoes-{mode or get_mode()}.pt"


def prompt_format(mode: str | None = None) -> dict:
    """O formato do prompt com que o modo treina, para guardar no checkpoint junto com o modelo."""
    return {"preambulo": INSTRUCTION_SETTINGS[mode or get_mode()]["preambulo"]}


def finetune_instructions(model, tokenizer, train_data: list[dict], val_data: list[dict], mode: str | None = None,
                          device=None, seed: int = 123) -> dict:
    """Ajuste fino por instruções com a configuração do modo (INSTRUCTION_SETTINGS).

    `tokenizer` é o do modelo (o que `load_base_model` devolve junto com ele). Treina `model` no lugar e devolve
    o histórico: perdas de treino/validação, tokens vistos e tempo.
    """
    mode = mode or get_mode()
    device = device or get_device()
    cfg = mode_settings(INSTRUCTION_SETTINGS, mode)
    if not cfg["train_open"]:
        train_data = [e for e in train_data if e["tarefa"] != OPEN_TASK]
        val_data = [e for e in val_data if e["tarefa"] != OPEN_TASK]
    train_data = train_data[:cfg["train_examples"]]
    set_seed(seed)
    opcoes = {"preambulo": cfg["preambulo"], "mask_prompt": cfg["mask_prompt"],
              "allowed_max_length": cfg["allowed_max_length"], "tokenizer": tokenizer}
    train_loader = create_instruction_dataloader(train_data, cfg["batch_size"], shuffle=True, drop_last=True, **opcoes)
    val_loader = create_instruction_dataloader(val_data, cfg["batch_size"], shuffle=False, drop_last=False, **opcoes)
    model.to(device)
    # fused=True faz todas as contas do AdamW de uma vez (CPU e CUDA): no modo rápido, o passo fica bem mais curto
    fundido = torch.device(device).type in ("cpu", "cuda")
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"], fused=fundido)
    amostras = [next(e for e in val_data if e["tarefa"] == t) for t in ("capital", "sentimento", "maior_numero")]
    total = cfg["num_epochs"] * len(train_loader)
    inicio = time.perf_counter()
    train_losses, val_losses, tokens_seen = train_instruction_model(
        model, train_loader, val_loader, optimizer, device, cfg["num_epochs"], cfg["eval_freq"], cfg["eval_iter"],
        amostras, tokenizer, max_seconds=cfg["max_seconds"], preambulo=cfg["preambulo"],
        lr_schedule=lambda passo: stable_then_cosine_lr(passo, total, cfg["lr"], cfg["min_lr"], cfg["warmup_steps"],
                                                        round(cfg["decay_fraction"] * total)),
        grad_clip=cfg["grad_clip"])
    model.eval()
    return {"train_losses": train_losses, "val_losses": val_losses, "tokens_seen": tokens_seen,
            "tempo_s": time.perf_counter() - inicio}


def load_instruction_model(mode: str | None = None, device=None):
    """Modelo ajustado para instruções, com o tokenizador dele. Devolve (model, tokenizer, config, fonte).

    Usa o checkpoint do capítulo 07 deste modo, se existir e guardar o tokenizador e o formato do prompt; senão
    (checkpoint ausente, de uma versão antiga, ou que não combina), faz agora o ajuste fino do modelo de
    `load_base_model` com a configuração do modo (no modo rápido, cerca de dois minutos) e o salva com os dois.
    `config` traz, além da configuração do modelo, `preambulo`: o formato com que ele foi treinado — é esse que
    se passa a `format_input`/`generate_response`, não o do modo atual. `fonte` é 'checkpoint' ou 'ajuste'.
    """
    mode = mode or get_mode()
    device = device or get_device()
    caminho = instruction_checkpoint_path(mode)
    if caminho.exists():
        try:
            model, pacote = load_checkpoint(caminho, device)
            if "tokenizer" not in pacote or "formato_prompt" not in pacote:
                raise ValueError("ele não guarda o tokenizador e o formato do prompt: é de uma versão antiga do "
                                 "curso")
            tokenizer = tokenizer_from_state(pacote["tokenizer"])
            if tokenizer.n_vocab > pacote["config"]["vocab_size"]:
                raise ValueError("o tokenizador guardado tem mais tokens do que o modelo")
            formato = pacote["formato_prompt"]
            print(f"Modelo de instruções: checkpoint do capítulo 07 ({caminho.name}), com o tokenizador "
                  f"{tokenizer.name} e o prompt {'com' if formato['preambulo'] else 'sem'} preâmbulo.")
            return model.eval(), tokenizer, {**pacote["config"], **formato}, "checkpoint"
        except ValueError as erro:
            print(f"O checkpoint {caminho.name} não serve ({erro}); vou ajustar um modelo agora e salvá-lo no "
                  f"lugar dele.")
    model, tokenizer, config, fonte_base = load_instruction_base(mode, device)
    print(f"Modelo de instruções: sem checkpoint do capítulo 07; ajustando o modelo base ({fonte_base}) agora "
          f"(até {INSTRUCTION_SETTINGS[mode]['max_seconds']} s)...")
    train_data, val_data, _ = load_instruction_splits()
    historico = finetune_instructions(model, tokenizer, train_data, val_data, mode, device)
    formato = prompt_format(mode)
    save_checkpoint(caminho, model, None, config, tokenizer=tokenizer_state(tokenizer), historico=historico,
                    fonte_base=fonte_base, formato_prompt=formato)
    return model.eval(), tokenizer, {**config, **formato}, "ajuste"


# %% 07-instrucoes/notebook.ipynb · célula 67
def mcnemar_test(hits_a: list[bool], hits_b: list[bool]) -> tuple[int, int, float]:
    """Teste exato de McNemar para dois sistemas avaliados nos mesmos itens.

    Devolve (b, c, p): b = itens que só A acerta, c = itens que só B acerta, p = probabilidade bilateral de uma
    divisão tão desigual entre b e c se os dois sistemas fossem igualmente bons (binomial com p = 1/2).
    """
    if len(hits_a) != len(hits_b):
        raise ValueError(f"Os dois sistemas precisam ser avaliados nos mesmos itens: {len(hits_a)} contra "
                         f"{len(hits_b)} acertos.")
    b = sum(bool(x) and not bool(y) for x, y in zip(hits_a, hits_b))
    c = sum(bool(y) and not bool(x) for x, y in zip(hits_a, hits_b))
    n = b + c
    if n == 0:
        return 0, 0, 1.0
    cauda = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2 ** n
    return b, c, min(1.0, 2 * cauda)
