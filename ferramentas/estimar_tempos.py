#!/usr/bin/env python3
"""Quanto tempo cada capítulo leva: o rápido medido na CPU e o completo estimado numa GPU T4 do Colab.

O modo rápido vem medido: é o `tempo_s` que cada notebook grava em `artefatos/resultados/<capítulo>.json` na
execução versionada (em alguns capítulos, o tempo do treino; em outros, o do notebook inteiro — como na tabela de
resultados). O completo é **estimado** a partir das configurações do capítulo, pelo método da revisão do caminho da
GPU (`../shared/revisoes/caminho-colab-gpu.md`), até que uma medição numa T4 o substitua:

- treino: 6·N·tokens + 12·L·T·d por token (a atenção), a ~9 TFLOP/s efetivos (8–10 para este código sem fusão,
  em fp16 com autocast); N são os parâmetros das multiplicações de matrizes (blocos e cabeça de saída);
- avaliação e geração: 2·N + 4·L·T·d por token, a ~5,5 TFLOP/s se rodam em fp32 (hoje), ou à taxa do treino se
  `calc_loss_loader` usar autocast; a geração sem KV cache refaz o contexto inteiro a cada token novo;
- modelos pequenos são limitados pelo lançamento de kernels: cada passo custa pelo menos ~11 ms (treino), ~4 ms
  (avaliação) ou ~1 ms + 0,5 ms por bloco (um token gerado);
- o que não é GPU (carregar dados e pesos, tabelas de contagem, BPE, int8 na CPU, figuras) entra como uma parcela
  fixa por capítulo, lida da mesma revisão.

Os capítulos 06–08 são estimados como o aluno os roda num Colab novo: com o GPT-2 124M como base. As configurações
vêm do pacote (`PRETRAIN_SETTINGS`, `INSTRUCTION_SETTINGS`) ou, quando só o notebook as tem, da célula do notebook
que as define (`CONFIGURACOES` do 06, `CONFIG` do 04 e do 08, as receitas `CANDIDATAS` do 06), lida sem executar
o notebook. Mudou uma configuração, a estimativa muda junto.

Uso:
    python ferramentas/estimar_tempos.py              # imprime a tabela e o detalhe de cada capítulo
    python ferramentas/estimar_tempos.py --escrever   # escreve a tabela no README, entre as marcas de tempos
    python ferramentas/estimar_tempos.py --check      # sai com 1 se a tabela do README estiver desatualizada
"""
from __future__ import annotations

import argparse
import ast
import inspect
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

RAIZ = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(RAIZ))
sys.path.insert(0, str(RAIZ / "ferramentas"))
from exportar import CAPITULOS  # noqa: E402

INICIO, FIM = "<!-- tempos:inicio -->", "<!-- tempos:fim -->"
LIMITE_T4_MIN = 12                                   # a meta da issue 27: cada capítulo completo ≤ 12 min numa T4


@dataclass(frozen=True)
class GPU:
    """As taxas efetivas de uma GPU para o código do curso (eager, sem kernels fundidos)."""
    nome: str
    treino_flops: float                 # FLOP/s efetivos no treino com precisão mista
    fp32_flops: float                   # FLOP/s sustentados em fp32 (avaliação e geração sem autocast)
    passo_minimo_s: float = 0.011       # um passo de treino de um modelo pequeno (lançamento de kernels, .item())
    avaliacao_minima_s: float = 0.004   # um lote de avaliação
    token_minimo_s: float = 0.001       # um token gerado, mais `token_por_bloco_s` por bloco do modelo
    token_por_bloco_s: float = 0.0005


T4 = GPU("T4", treino_flops=9e12, fp32_flops=5.5e12)

# Tamanhos dos dados que as configurações não dizem (contados uma vez com os dados do espelho; mudam só se os
# dados mudarem). Tokens do tokenizador do curso nos livros de treino do 05 e nos dois livros guardados.
TOKENS_TREINO_05 = 1_188_461
TOKENS_VALIDACAO_05 = 130_000
CHARS_POR_TOKEN_GPT2 = 3.0                 # português com o BPE do GPT-2 (o 02 mede ~2,3 tokens por palavra)
TOKENS_PREAMBULO = 35                      # o preâmbulo do prompt do 07 no modo completo
FRACAO_TREINO_FAKEBR = 0.7                 # 70 % treino, 15 % validação, 15 % teste (em textos)
ESTRATEGIAS_08, PROMPTS_08 = 6, 3          # a seção de decodificação do 08: estratégias × prompts × sementes

# O que não é GPU, por capítulo: (segundos, o que é), da revisão do caminho da GPU (seção 3).
FIXO = {
    "00-oficina": (45, "tudo como no rápido: uma rede minúscula nas espirais"),
    "01-estatistica": (30, "tudo como no rápido, na CPU"),
    "02-tokens": (150, "BPE em 16 livros até 16.384 tokens, na CPU"),
    "03-atencao": (30, "tudo como no rápido, na CPU"),
    "04-gpt": (45, "demonstrações na CPU"),
    "05-pretreino": (150, "tabelas de n-gramas, pesos do GPT-2, demonstração na CPU, figuras"),
    "06-finetuning": (90, "Fake.br, pesos do GPT-2, saco de tokens"),
    "07-instrucoes": (75, "pesos do GPT-2 e dados"),
    "08-extras": (330, "int8 na CPU, RAG, juiz, roteador, DDP na CPU, aritmética"),
}


# ---------------------------------------------------------------- contas

def parametros(cfg: dict, cabeca: int | None = None) -> float:
    """Parâmetros das multiplicações de matrizes: 12·d² por bloco e a cabeça (d × `cabeca`, padrão o vocabulário)."""
    d = cfg["emb_dim"]
    return cfg["n_layers"] * 12 * d * d + d * (cfg["vocab_size"] if cabeca is None else cabeca)


def treino_s(gpu: GPU, cfg: dict, passos: float, tokens_por_passo: float, contexto: int,
             cabeca: int | None = None, retro: float = 1.0) -> float:
    """Segundos de `passos` de treino; `retro` é a fração da volta (backward) feita (1 = o modelo inteiro)."""
    n = parametros(cfg, cabeca)
    por_token = (2 + 4 * retro) * n + (4 + 8 * retro) * cfg["n_layers"] * contexto * cfg["emb_dim"]
    return max(passos * gpu.passo_minimo_s, passos * tokens_por_passo * por_token / gpu.treino_flops)


def avaliacao_em_precisao_mista() -> bool:
    """A avaliação do curso roda com autocast? (lido do código de `calc_loss_loader` e `calc_loss_batch`)."""
    from llm_do_zero import pretreino
    return any("autocast" in inspect.getsource(f) for f in (pretreino.calc_loss_loader, pretreino.calc_loss_batch))


def frente_s(gpu: GPU, cfg: dict, lotes: float, tokens_por_lote: float, contexto: int,
             cabeca: int | None = None) -> float:
    """Segundos de `lotes` de avaliação (só a ida, sem gradiente)."""
    taxa = gpu.treino_flops if avaliacao_em_precisao_mista() else gpu.fp32_flops
    por_token = 2 * parametros(cfg, cabeca) + 4 * cfg["n_layers"] * contexto * cfg["emb_dim"]
    return max(lotes * gpu.avaliacao_minima_s, lotes * tokens_por_lote * por_token / taxa)


def geracao_s(gpu: GPU, cfg: dict, chamadas: float, lote: int, novos: int, prompt: int) -> float:
    """Segundos de `chamadas` gerações de `novos` tokens (lote de `lote` sequências), sem KV cache."""
    contexto = min(prompt + novos / 2, cfg["context_length"])          # o contexto médio ao longo da geração
    por_token = frente_s(gpu, cfg, 1, lote * contexto, int(contexto))
    minimo = gpu.token_minimo_s + gpu.token_por_bloco_s * cfg["n_layers"]
    return chamadas * novos * max(minimo, por_token)


def valor_no_notebook(capitulo: str, nome: str, nomes: dict | None = None):
    """O valor da atribuição `nome = …` de uma célula do notebook, calculado sem executar o notebook.

    A expressão é avaliada só com `nomes` (e sem funções embutidas): serve para dicionários de configuração.
    """
    nb = json.loads((RAIZ / capitulo / "notebook.ipynb").read_text(encoding="utf-8"))
    for celula in nb["cells"]:
        if celula["cell_type"] != "code":
            continue
        codigo = "\n".join(linha for linha in "".join(celula["source"]).splitlines()
                           if not linha.lstrip().startswith(("!", "%")))
        try:
            arvore = ast.parse(codigo)
        except SyntaxError:
            continue
        for no in arvore.body:
            if (isinstance(no, ast.Assign) and len(no.targets) == 1 and isinstance(no.targets[0], ast.Name)
                    and no.targets[0].id == nome):
                expressao = compile(ast.Expression(no.value), f"{capitulo}/notebook.ipynb", "eval")
                return eval(expressao, {"__builtins__": {}}, dict(nomes or {}))  # configurações do próprio curso
    raise LookupError(f"{capitulo}/notebook.ipynb não tem uma célula com `{nome} = …`: atualize "
                      f"ferramentas/estimar_tempos.py junto com o notebook.")


def _gpt2() -> dict:
    from llm_do_zero.gpt import GPT_CONFIG_124M
    return dict(GPT_CONFIG_124M)


def _instrucoes(train_open: bool) -> tuple[int, int, int, float]:
    """(exemplos de treino, itens de teste, tarefas, tokens médios de um exemplo com o tokenizador do GPT-2)."""
    from llm_do_zero.instrucoes import OPEN_TASK, load_instruction_splits
    treino, _, teste = load_instruction_splits()
    usados = [e for e in treino if train_open or e["tarefa"] != OPEN_TASK]
    caracteres = sum(len(e["instrucao"]) + len(e["entrada"]) + len(e["saida"]) for e in usados) / len(usados)
    tarefas = len({e["tarefa"] for e in treino if e["tarefa"] != OPEN_TASK})
    itens = len([e for e in teste if e["tarefa"] != OPEN_TASK])
    return len(usados), itens, tarefas, caracteres / CHARS_POR_TOKEN_GPT2 + 15


# ---------------------------------------------------------------- cada capítulo: [(parte, segundos)]

def _fixo(capitulo: str) -> list[tuple[str, float]]:
    segundos, descricao = FIXO[capitulo]
    return [(descricao, segundos)]


def partes_04(gpu: GPU) -> list[tuple[str, float]]:
    cfg = valor_no_notebook("04-gpt", "CONFIG")["completo"]
    gpt2 = _gpt2()
    medida = frente_s(gpu, gpt2, 1 + cfg["repeats"], cfg["batch_size"] * cfg["tokens_medida"],
                      cfg["tokens_medida"])
    return _fixo("04-gpt") + [("medição de velocidade (fp32)", medida)]


def partes_05(gpu: GPU) -> list[tuple[str, float]]:
    from llm_do_zero.pretreino import PRETRAIN_SETTINGS
    cfg = PRETRAIN_SETTINGS["completo"]
    m, b = cfg["model"], cfg["batch_size"]
    t = m["context_length"]
    passos = cfg["num_epochs"] * ((TOKENS_TREINO_05 // t) // b)
    if cfg["max_steps"]:
        passos = min(passos, cfg["max_steps"])
    treino = treino_s(gpu, m, passos, b * t, t)
    if cfg["max_seconds"]:
        treino = min(treino, cfg["max_seconds"])
    avaliacoes = passos // cfg["eval_freq"] + 2
    periodica = frente_s(gpu, m, avaliacoes * 2 * cfg["eval_iter"], b * t, t)
    final = frente_s(gpu, m, TOKENS_VALIDACAO_05 / (b * t) * 2, b * t, t)     # validação inteira do GPT e da base
    return _fixo("05-pretreino") + [(f"treino: {passos} passos de {b}×{t}", treino),
                                    (f"avaliação periódica ({avaliacoes}×)", periodica),
                                    ("validação inteira", final)]


def partes_06(gpu: GPU) -> list[tuple[str, float]]:
    from llm_do_zero.finetuning import FAKEBR_PAIRS
    cfg = valor_no_notebook("06-finetuning", "CONFIGURACOES")["completo"]
    central = valor_no_notebook("06-finetuning", "RECEITA_CENTRAL", {"cfg": cfg})
    candidatas = valor_no_notebook("06-finetuning", "CANDIDATAS", {"cfg": cfg, "RECEITA_CENTRAL": central})
    gpt2 = _gpt2()
    pares = cfg["train_pairs"] or FAKEBR_PAIRS
    treino = round(2 * pares * FRACAO_TREINO_FAKEBR)
    validacao = (2 * pares - treino) // 2
    b, t_max = cfg["batch_size"], min(cfg["max_length"], gpt2["context_length"])
    retro = {"all": 1.0, "last_block": 1 / gpt2["n_layers"], "lora": 0.5}

    def rodada(receita: dict) -> tuple[float, float]:
        """(treino, avaliações) de um ajuste fino com a receita."""
        t = 1 if receita["pooling"] == "first" else t_max
        passos = receita["epochs"] * (treino // b)
        if cfg["max_steps"]:
            passos = min(passos, cfg["max_steps"])
        segundos = treino_s(gpu, gpt2, passos, b * t, t, cabeca=2, retro=retro.get(receita["trainable"], 1.0))
        periodicas = passos // cfg["eval_freq"] + 1
        avaliacao = frente_s(gpu, gpt2, periodicas * cfg["eval_iter"] * 2, (b + 4 * b) * t, t, cabeca=2)
        avaliacao += frente_s(gpu, gpt2, receita["epochs"] * validacao / (4 * b), 4 * b * t, t, cabeca=2)
        return segundos, avaliacao

    selecao = [rodada(r) for r in candidatas.values()]
    sementes = [rodada(central) for _ in cfg["seeds"][1:]]
    teste = frente_s(gpu, gpt2, len(cfg["seeds"]) * validacao / (4 * b), 4 * b * t_max, t_max, cabeca=2)
    return _fixo("06-finetuning") + [
        (f"{len(candidatas)} receitas: treino", sum(s for s, _ in selecao)),
        (f"{len(candidatas)} receitas: avaliação", sum(a for _, a in selecao)),
        (f"{len(sementes)} sementes a mais: treino e avaliação", sum(s + a for s, a in sementes)),
        ("teste das sementes", teste)]


def _treino_07(gpu: GPU) -> tuple[list[tuple[str, float]], dict]:
    from llm_do_zero.instrucoes import INSTRUCTION_SETTINGS
    cfg = INSTRUCTION_SETTINGS["completo"]
    gpt2 = _gpt2()
    exemplos, itens, tarefas, tokens = _instrucoes(cfg["train_open"])
    t = min(cfg["allowed_max_length"], math.ceil(1.3 * (tokens + TOKENS_PREAMBULO * cfg["preambulo"])))
    b = cfg["batch_size"]
    passos = cfg["num_epochs"] * math.ceil(exemplos / b)
    treino = treino_s(gpu, gpt2, passos, b * t, t)
    periodica = frente_s(gpu, gpt2, (passos // cfg["eval_freq"] + 2) * 2 * cfg["eval_iter"], b * t, t)
    info = {"itens": itens, "tarefas": tarefas, "t": t, "cfg": cfg, "gpt2": gpt2}
    return [(f"ajuste fino: {passos} passos de {b}×{t}", treino), ("avaliação periódica", periodica)], info


def partes_07(gpu: GPU) -> list[tuple[str, float]]:
    treino, info = _treino_07(gpu)
    cfg, gpt2, itens, t = info["cfg"], info["gpt2"], info["itens"], info["t"]
    novos = cfg["max_new_tokens"]
    base = geracao_s(gpu, gpt2, itens, 1, novos, (cfg["n_shots"] + 1) * t)
    ajustado = geracao_s(gpu, gpt2, 2 * itens, 1, novos, t)
    opcoes = frente_s(gpu, gpt2, 2 * itens * 4, t, t)                       # ~4 opções por item, base e ajustado
    return _fixo("07-instrucoes") + treino + [(f"modelo base com {cfg['n_shots']} exemplos ({itens} itens)", base),
                                              ("ajustado: redações do treino e novas", ajustado),
                                              ("escolha entre opções", opcoes)]


def partes_08(gpu: GPU) -> list[tuple[str, float]]:
    from llm_do_zero.tokens import COURSE_VOCAB_SIZE
    cfg = valor_no_notebook("08-extras", "CONFIG")["completo"]
    gpt2 = _gpt2()
    treino_07, info = _treino_07(gpu)
    t07, tarefas, itens = info["t"], info["tarefas"], info["itens"]
    ds = cfg["dataset"]
    pequeno = {"emb_dim": ds["emb_dim"], "n_layers": ds["n_layers"], "vocab_size": COURSE_VOCAB_SIZE,
               "context_length": ds["context_length"]}
    rodadas = len(ds["fractions"]) * len(ds["seeds"])
    tamanho = rodadas * (treino_s(gpu, pequeno, ds["steps"], ds["batch_size"] * ds["context_length"],
                                  ds["context_length"])
                         + frente_s(gpu, pequeno, ds["eval_batches"], ds["batch_size"] * ds["context_length"],
                                    ds["context_length"]))
    mk = cfg["masking"]
    mascara = 2 * len(mk["seeds"]) * treino_s(gpu, gpt2, mk["steps"], mk["batch_size"] * t07, t07)
    mascara += geracao_s(gpu, gpt2, 2 * len(mk["seeds"]) * itens, 1, info["cfg"]["max_new_tokens"], t07)
    dec = cfg["decoding"]
    decodificacao = geracao_s(gpu, gpt2, ESTRATEGIAS_08 * PROMPTS_08 * len(dec["seeds"]), dec["samples"],
                              dec["max_new_tokens"], 10)
    ood = cfg["out_of_domain"]
    fora = frente_s(gpu, gpt2, 3 * ood["eval_batches"], ood["batch_size"] * gpt2["context_length"],
                    gpt2["context_length"])
    dpo = cfg["dpo"]
    pares = (dpo["pairs_per_task"] + dpo["val_pairs_per_task"]) * tarefas
    gerar_pares = geracao_s(gpu, gpt2, pares, 1, info["cfg"]["max_new_tokens"], t07)
    rodadas_dpo = 2 * len(dpo["seeds"])                                         # DPO e o controle supervisionado
    passo_dpo = treino_s(gpu, gpt2, dpo["steps"], 2 * dpo["batch_size"] * t07, t07)
    referencia = frente_s(gpu, gpt2, dpo["steps"], 2 * dpo["batch_size"] * t07, t07)
    sondas = frente_s(gpu, gpt2, (dpo["steps"] // dpo["eval_every"] + 1) * 2,
                      dpo["val_pairs_per_task"] * tarefas * t07, t07)
    preferencia = gerar_pares + rodadas_dpo * (passo_dpo + referencia + sondas)
    kv = cfg["kv_cache"]
    cache = geracao_s(gpu, gpt2, kv["repeats"], 1, kv["max_new_tokens"], 10) * 1.5
    return _fixo("08-extras") + [("ajuste fino do 07 (Colab novo)", sum(s for _, s in treino_07)),
                                 (f"tamanho do conjunto: {rodadas} treinos de {ds['steps']} passos", tamanho),
                                 (f"máscara do prompt: {2 * len(mk['seeds'])} treinos de {mk['steps']} passos",
                                  mascara),
                                 ("decodificação", decodificacao), ("fora do domínio (fp32)", fora),
                                 (f"DPO: {pares} pares e {rodadas_dpo} treinos de {dpo['steps']} passos", preferencia),
                                 ("KV cache", cache)]


PARTES = {"00-oficina": lambda gpu: _fixo("00-oficina"), "01-estatistica": lambda gpu: _fixo("01-estatistica"),
          "02-tokens": lambda gpu: _fixo("02-tokens"), "03-atencao": lambda gpu: _fixo("03-atencao"),
          "04-gpt": partes_04, "05-pretreino": partes_05, "06-finetuning": partes_06, "07-instrucoes": partes_07,
          "08-extras": partes_08}


def estimar(capitulo: str, gpu: GPU = T4) -> tuple[float, list[tuple[str, float]]]:
    """(segundos estimados do capítulo no modo completo na `gpu`, as partes que somam esse total)."""
    partes = PARTES[capitulo](gpu)
    return sum(s for _, s in partes), partes


def medido_rapido_s(capitulo: str, pasta: Path | None = None) -> float | None:
    """O `tempo_s` da execução rápida versionada (None se o capítulo não grava resultados)."""
    arquivo = (pasta or RAIZ / "artefatos" / "resultados") / f"{capitulo}.json"
    if not arquivo.is_file():
        return None
    return float(json.loads(arquivo.read_text(encoding="utf-8"))["tempo_s"])


# ---------------------------------------------------------------- textos

def minutos(segundos: float) -> str:
    """'menos de 1 min', '2,5 min', '14 min': meio minuto de resolução abaixo de 10 min, minuto inteiro acima."""
    valor = segundos / 60
    if valor < 1:
        return "menos de 1 min"
    if valor < 10:
        return f"{round(valor * 2) / 2:.1f}".replace(".", ",").removesuffix(",0") + " min"
    return f"{round(valor)} min"


def _cerca(segundos: float) -> str:
    texto = minutos(segundos)
    return texto if texto.startswith("menos") else f"cerca de {texto}"


def frase(capitulo: str, gpu: GPU = T4) -> str:
    """A frase do topo do notebook: o tempo do rápido (medido) e o do completo (estimado), em português."""
    total, _ = estimar(capitulo, gpu)
    rapido = medido_rapido_s(capitulo)
    inicio = (f"No modo rápido (CPU), este capítulo leva {_cerca(rapido)}" if rapido is not None else
              "O modo rápido (CPU) deste capítulo ainda não tem tempo registrado")
    return f"{inicio}; no completo, numa {gpu.nome}, {_cerca(total)} (estimativa)."


def tabela(gpu: GPU = T4) -> str:
    linhas = [f"| capítulo | rápido, CPU de 2 núcleos (medido) | completo, {gpu.nome} (estimado) | o que mais pesa "
              "no completo |", "|---|---|---|---|"]
    for cap in CAPITULOS:
        total, partes = estimar(cap, gpu)
        rapido = medido_rapido_s(cap)
        maior = max(partes[1:] or partes, key=lambda p: p[1])[0]      # a primeira parte é a fixa
        alerta = f" ⚠ acima de {LIMITE_T4_MIN} min" if total > LIMITE_T4_MIN * 60 else ""
        linhas.append(f"| {cap} | {'—' if rapido is None else minutos(rapido)} | {minutos(total)}{alerta} | "
                      f"{maior} |")
    return "\n".join(linhas)


def detalhe(gpu: GPU = T4) -> str:
    linhas = []
    for cap in CAPITULOS:
        total, partes = estimar(cap, gpu)
        linhas.append(f"{cap}: {total / 60:.1f} min")
        linhas.extend(f"    {nome}: {s / 60:.1f} min" for nome, s in partes)
    return "\n".join(linhas)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    grupo = parser.add_mutually_exclusive_group()
    grupo.add_argument("--escrever", action="store_true", help=f"escreve a tabela no README, entre {INICIO} e {FIM}")
    grupo.add_argument("--check", action="store_true", help="sai com 1 se a tabela do README estiver desatualizada")
    args = parser.parse_args(argv)
    texto = tabela()
    if not (args.escrever or args.check):
        print(texto + "\n\nDetalhe das estimativas (minutos numa T4):\n" + detalhe())
        return 0
    readme = RAIZ / "README.md"
    original = readme.read_text(encoding="utf-8")
    if INICIO not in original or FIM not in original:
        print(f"README.md não tem as marcas {INICIO} e {FIM}: ponha-as onde a tabela de tempos deve ficar.")
        return 1
    antes, resto = original.split(INICIO, 1)
    atual, depois = resto.split(FIM, 1)
    if args.check:
        if atual.strip() != texto:
            print("A tabela de tempos do README está desatualizada: rode `python ferramentas/estimar_tempos.py "
                  "--escrever`.")
            return 1
        print("tabela de tempos do README em dia")
        return 0
    readme.write_text(f"{antes}{INICIO}\n{texto}\n{FIM}{depois}", encoding="utf-8")
    print("tabela de tempos escrita no README")
    return 0


if __name__ == "__main__":
    sys.exit(main())
