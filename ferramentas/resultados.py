#!/usr/bin/env python3
"""Escreve os números dos textos do curso a partir de `artefatos/resultados/*.json`.

Cada notebook de treino grava as suas métricas, o modo, a máquina e o tempo em `artefatos/resultados/<capítulo>.json`
(versionados: são os resultados da execução gravada nos notebooks). Este script escreve com eles:

- a tabela do README principal, entre as linhas `<!-- resultados:inicio -->` e `<!-- resultados:fim -->`;
- cada número citado nos textos do curso — os `.md` de cada capítulo e as células de markdown dos notebooks —,
  escrito entre marcas que dizem de onde ele vem: `<!--r 05-pretreino val_loss 3-->4,496<!--/r-->` (capítulo,
  chave — com pontos para entrar em listas e dicionários, ex. `dpo.acerto_exato.1`, ou `tempo_s` para o tempo do
  registro — e formato: casas decimais, `pct` + casas para porcentagem, `e` + casas para notação científica,
  como 7,5e-08). Nenhum desses números é digitado à mão. As marcas são comentários HTML: no GitHub, no Jupyter e
  no Colab só o número aparece.

Uso:
    python ferramentas/resultados.py            # reescreve a tabela e os números marcados
    python ferramentas/resultados.py --check    # só confere; sai com 1 se algum número estiver desatualizado
    python ferramentas/resultados.py --mostrar  # só imprime a tabela
"""
from __future__ import annotations

import argparse
import json
import re
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
    "03-atencao": lambda m: (
        f"`MultiHeadAttention` × PyTorch: diferença máxima {m['mha_x_pytorch_max_diferenca']:.1e}; tarefa de "
        f"cópia: acurácia {br(m['copia_acuracia_antes'], 3)} (acaso {br(m['copia_acaso'], 3)}) → "
        f"{br(m['copia_acuracia_depois'], 3)} em {m['copia_passos']} passos"),
    "04-gpt": lambda m: (
        f"`GPTModel` {br(m['parametros_gptmodel'], 0)} parâmetros "
        f"(GPT-2 original {br(m['parametros_gpt2_openai'], 0)}); "
        f"{br(m['tokens_por_s'], 0)} tokens/s no forward; perda inicial {br(m['perda_inicial']['pytorch'][0], 3)} "
        f"(padrão do PyTorch) × {br(m['perda_inicial']['gpt2'][0], 3)} (GPT-2) contra "
        f"ln V = {br(m['ln_vocab'], 3)}"),
    "05-pretreino": lambda m: (
        f"validação (livro fora do treino) {br(m['val_bits_por_caractere'], 3)} bits/caractere em "
        f"{br(m['passos'], 0)} passos · tabela de bigramas {br(m['bigrama_bits_por_caractere'], 3)} · unigramas "
        f"{br(m['unigrama_bits_por_caractere'], 3)}; modelo base do curso (06–08) "
        f"{br(m['base_06_08_bits_por_caractere'], 3)} em {br(m['curso_passos'], 0)} passos; tokenizador "
        f"{m['tokenizador']} ({br(m['tokens_por_palavra'])} tokens/palavra)"),
    "06-finetuning": lambda m: (
        f"acurácia de teste em texto limpo {pct(m['test_accuracy_limpo'])} ± {pct(m['test_accuracy_limpo_desvio'])} "
        f"({len(m['test_accuracy_limpo_sementes'])} sementes) · "
        f"saco de tokens {pct(m['baseline_test_accuracy_limpo'])} · maioria {pct(m['maioria_test_accuracy'])}; "
        f"no texto original a regra do espaço duplo faz {pct(m['regra_espaco_duplo_accuracy'])}"),
    "07-instrucoes": lambda m: (
        f"acerto exato {pct(m['exact_match'])} nas redações do treino e {pct(m['exact_match_redacoes_novas'])} em "
        f"redações novas ({m['exemplos_teste']} itens cada) · acaso {pct(m['acaso_exact_match'])} · "
        f"modelo base com {m['n_shots']} exemplos {pct(m['few_shot_base_exact_match'])}"),
    "08-extras": lambda m: (
        f"DPO {pct(m['dpo_exact_match'])} × controle supervisionado {pct(m['sft_controle_exact_match'])} de acerto "
        f"exato (3 sementes); juiz κ = {br(m['juiz_kappa'])}; roteador em paráfrases "
        f"{pct(m['roteador_parafrases_accuracy'])}; KV cache {br(m['kv_cache_speedup'])}× mais rápido"),
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


# A chave pode ter espaços (nomes de receitas, por exemplo); o formato é sempre a última palavra da marca.
NUMERO = re.compile(r"<!--r (?P<capitulo>[\w-]+) (?P<chave>[^<>]+?) (?P<formato>\w+)-->(?P<texto>.*?)<!--/r-->")


def textos_do_curso(raiz: Path) -> list[Path]:
    """Os textos que citam resultados: o README principal, os .md de cada capítulo e os notebooks."""
    return [raiz / "README.md", *sorted(raiz.glob("[0-9][0-9]-*/**/*.md")),
            *sorted(raiz.glob("[0-9][0-9]-*/notebook.ipynb"))]


def valor_marcado(registros: dict[str, dict], capitulo: str, chave: str, formato: str) -> str:
    """O texto que uma marca deve conter, lido do registro do capítulo e formatado como pede a marca."""
    if capitulo not in registros:
        raise KeyError(f"não há artefatos/resultados/{capitulo}.json")
    valor = registros[capitulo]["tempo_s"] if chave == "tempo_s" else registros[capitulo]["metricas"]
    for parte in [] if chave == "tempo_s" else chave.split("."):
        try:
            valor = valor[int(parte)] if isinstance(valor, list) else valor[parte]
        except (KeyError, IndexError, ValueError, TypeError):
            raise KeyError(f"{capitulo}: a chave {chave!r} não existe nos resultados") from None
    if isinstance(valor, bool) or not isinstance(valor, (int, float)):
        return str(valor)
    if formato.startswith("pct"):
        return pct(valor, int(formato[3:] or 1))
    if formato.startswith("e"):
        return f"{valor:.{int(formato[1:] or 1)}e}".replace(".", ",")
    return br(valor, int(formato))


def atualizar_numeros(texto: str, registros: dict[str, dict]) -> tuple[str, list[str]]:
    """Reescreve as marcas de um texto; devolve o texto novo e a lista das que estavam diferentes."""
    diferentes = []

    def trocar(m: re.Match) -> str:
        certo = valor_marcado(registros, m["capitulo"], m["chave"], m["formato"])
        if m["texto"] != certo:
            diferentes.append(f"{m['capitulo']} {m['chave']}: texto {m['texto']!r}, resultado {certo!r}")
        return f"<!--r {m['capitulo']} {m['chave']} {m['formato']}-->{certo}<!--/r-->"

    return NUMERO.sub(trocar, texto), diferentes


def atualizar_notebook(texto: str, registros: dict[str, dict]) -> tuple[str, list[str]]:
    """As marcas das células de markdown de um notebook (o código e as saídas ficam como estão).

    Só as células que mudam são reescritas; o arquivo volta no formato em que o Jupyter o grava (indentação 1,
    acentos como estão, quebra de linha no fim), então um notebook já em dia sai idêntico, byte a byte.
    """
    nb = json.loads(texto)
    diferentes = []
    for numero, celula in enumerate(nb["cells"]):
        if celula["cell_type"] != "markdown":
            continue
        fonte = celula["source"] if isinstance(celula["source"], str) else "".join(celula["source"])
        try:
            nova, da_celula = atualizar_numeros(fonte, registros)
        except KeyError as erro:
            raise KeyError(f"célula {numero}: {erro.args[0]}") from None
        diferentes += [f"célula {numero}: {d}" for d in da_celula]
        if nova != fonte:
            celula["source"] = nova if isinstance(celula["source"], str) else nova.splitlines(keepends=True)
    if not diferentes:
        return texto, []
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n", diferentes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mostrar", action="store_true", help="só imprime a tabela, sem mexer no README")
    parser.add_argument("--check", action="store_true", help="só confere a tabela e os números marcados")
    parser.add_argument("--raiz", type=Path, default=RAIZ, help="a cópia do curso a tratar (padrão: este repositório)")
    args = parser.parse_args(argv)
    raiz = args.raiz.resolve()
    registros = ler_resultados(raiz / "artefatos" / "resultados")
    if not registros:
        print("Nenhum resultado em artefatos/resultados/: execute os notebooks antes (ferramentas/executar.py).")
        return 1
    texto = tabela(registros)
    if args.mostrar:
        print(texto)
        return 0
    por_capitulo = {r["capitulo"]: r for r in registros}
    problemas, erros = [], []
    for caminho in textos_do_curso(raiz):
        original = caminho.read_text(encoding="utf-8")
        atualizar = atualizar_notebook if caminho.suffix == ".ipynb" else atualizar_numeros
        try:
            novo, diferentes = atualizar(original, por_capitulo)
        except KeyError as erro:          # uma marca sem resultado: conta como problema e segue para os outros textos
            erros.append(f"{caminho.relative_to(raiz)}: {erro.args[0]}")
            continue
        if caminho.name == "README.md" and caminho.parent == raiz:
            if INICIO not in novo or FIM not in novo:
                raise SystemExit(f"README.md não tem as marcas {INICIO} e {FIM}")
            antes, resto = novo.split(INICIO, 1)
            atual, depois = resto.split(FIM, 1)
            if atual.strip() != texto:
                diferentes.append("a tabela de resultados")
            novo = f"{antes}{INICIO}\n{texto}\n{FIM}{depois}"
        problemas += [f"{caminho.relative_to(raiz)}: {d}" for d in diferentes]
        if not args.check and novo != original:
            caminho.write_text(novo, encoding="utf-8")
    if erros:
        print("Marcas que não acham o seu resultado (execute o notebook do capítulo ou corrija a marca):\n  "
              + "\n  ".join(erros))
    if args.check:
        if problemas:
            print("Números desatualizados (rode `python ferramentas/resultados.py`):\n  " + "\n  ".join(problemas))
            return 1
        if not erros:
            print("tabela e números marcados conferem com artefatos/resultados/")
    else:
        print(f"tabela de {len(registros)} capítulos e números marcados escritos ({len(problemas)} atualizados)")
    return 1 if erros else 0


if __name__ == "__main__":
    sys.exit(main())
