"""Start the service: load every model once, then serve ``GET /seqPath/<name>`` on 127.0.0.1:6009.

    python flaskMain.py [--host H] [--port P] [--samples DIR] [--dev] [--age-gender ...] [--expression ...]

The same as ``faceanalysis serve``; ``python flaskMain.py --help`` lists every option.
"""

from faceanalysis.server_main import main

if __name__ == "__main__":
    main()
