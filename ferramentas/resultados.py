#!/usr/bin/env python3
"""Escreve a tabela de resultados do README a partir de `artefatos/resultados/*.json`.

Cada notebook de treino grava as suas métricas, o modo, a máquina e o tempo em `artefatos/resultados/<capítulo>.json`.
Este script monta com eles a tabela do README, entre as linhas `<!-- resultados:inicio -->` e
`<!-- resultados:fim -->`: nenhum número da tabela é digitado à mão.

Uso:
    python ferramentas/resultados.py            # reescreve a tabela no README.md
    python ferramentas/resultados.py --mostrar  # só imprime a tabela
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

RAIZ = Path(__file__).resolve().parent.parent
INICIO, FIM = "<!-- resultados:inicio -->", "<!-- resultados:fim -->"


def br(valor: float, casas: int = 2) -> str:
    """Número no formato brasileiro: 1.234,56."""
    texto = f"{valor:,.{casas}f}"
    return texto.replace(",", "\0").replace(".", ",").replace("\0", ".")


def pct(valor: float, casas: int = 1) -> str:
    return br(100 * valor, casas) + "%"


# Capítulo -> como resumir as métricas dele numa célula da tabela (o destaque e os seus baselines).
DESTAQUES = {
    "00-oficina": lambda m: f"acurácia de teste nas espirais {pct(m['acuracia_teste_espirais'])}",
    "01-estatistica": lambda m: (
        f"perplexidade de teste: uniforme {br(m['perplexidade_uniforme'])} · unigrama {br(m['perplexidade_unigrama'])}"
        f" · bigrama {br(m['perplexidade_bigrama'])} · trigrama {br(m['perplexidade_trigrama'])}; NLL do bigrama: "
        f"contagens {br(m['nll_teste_bigrama_contagens'], 4)} × rede {br(m['nll_teste_bigrama_rede'], 4)}"),
    "02-tokens": lambda m: (
        f"BPE de {br(m['bpe_vocab'], 0)} tokens: {br(m['tokens_por_palavra_bpe'][str(m['bpe_vocab'])])} tokens/palavra "
        f"(GPT-2: {br(m['tokens_por_palavra_gpt2'])}); `from_gpt2` "
        f"{'idêntico' if m['ids_identicos_ao_tiktoken'] else 'DIFERENTE'} ao tiktoken"),
    "05-pretreino": lambda m: (
        f"perda de validação {br(m['val_loss'], 3)} nats/token (baseline de unigramas {br(m['unigram_val_loss'], 3)}),"
        f" perplexidade {br(m['perplexidade_val'], 1)}, {br(m['tokens_vistos'], 0)} tokens vistos"),
    "06-finetuning": lambda m: (
        f"acurácia de teste {pct(m['test_accuracy'])} (saco de tokens {pct(m['baseline_test_accuracy'])}); "
        f"teste sem espaços duplos {pct(m['test_accuracy_teste_sem_espaco_duplo'])} (saco de tokens "
        f"{pct(m['baseline_test_accuracy_teste_sem_espaco_duplo'])}); treino e teste limpos "
        f"{pct(m['test_accuracy_textos_limpos'])} (saco de tokens {pct(m['baseline_test_accuracy_textos_limpos'])}); "
        f"LoRA, textos limpos, média de 3 sementes {pct(m['lora_test_accuracy'])} "
        f"({br(m['lora_parametros_treinaveis'], 0)} parâmetros treináveis)"),
    "07-instrucoes": lambda m: (
        f"acerto exato {pct(m['exact_match'])} em {m['exemplos_teste']} itens verificáveis do teste "
        f"(modelo base {pct(m['exact_match_base'])})"),
    "08-extras": lambda m: (
        f"KV cache {br(m['kv_cache_speedup'])}× mais rápido; DPO: acerto exato {pct(m['dpo']['acerto_exato'][0])} → "
        f"{pct(m['dpo']['acerto_exato'][1])}; RAG hit@3: "
        + " × ".join(f"{nome} {pct(linha['3'], 0)}" for nome, linha in m["rag_hit_at_k"].items())),
}


def ler_resultados(pasta: Path) -> list[dict]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(pasta.glob("*.json"))]


def resumir(registro: dict) -> str:
    """O destaque do capítulo; um capítulo sem destaque definido mostra as métricas numéricas como estão."""
    metricas = registro["metricas"]
    if registro["capitulo"] in DESTAQUES:
        try:
            return DESTAQUES[registro["capitulo"]](metricas)
        except KeyError as erro:
            raise SystemExit(f"{registro['capitulo']}: falta a métrica {erro} nos resultados; "
                             "execute o notebook de novo ou ajuste DESTAQUES em ferramentas/resultados.py") from erro
    return ", ".join(f"`{k}` {v}" for k, v in metricas.items() if isinstance(v, (int, float)))


def tabela(registros: list[dict]) -> str:
    linhas = ["| capítulo | modo | máquina | tempo (s) | métricas |", "|---|---|---|---|---|"]
    for r in registros:
        linhas.append(f"| {r['capitulo']} | {r['modo']} | {r['dispositivo']} | {br(r['tempo_s'], 1)} | {resumir(r)} |")
    return "\n".join(linhas)


def escrever_no_readme(readme: Path, texto_tabela: str) -> None:
    conteudo = readme.read_text(encoding="utf-8")
    if INICIO not in conteudo or FIM not in conteudo:
        raise SystemExit(f"{readme.name} não tem as marcas {INICIO} e {FIM}")
    antes, resto = conteudo.split(INICIO, 1)
    _, depois = resto.split(FIM, 1)
    readme.write_text(f"{antes}{INICIO}\n{texto_tabela}\n{FIM}{depois}", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mostrar", action="store_true", help="só imprime a tabela, sem mexer no README")
    args = parser.parse_args(argv)
    registros = ler_resultados(RAIZ / "artefatos" / "resultados")
    if not registros:
        print("Nenhum resultado em artefatos/resultados/: execute os notebooks antes (ferramentas/executar.py).")
        return 1
    texto = tabela(registros)
    if args.mostrar:
        print(texto)
    else:
        escrever_no_readme(RAIZ / "README.md", texto)
        print(f"tabela de {len(registros)} capítulos escrita no README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
